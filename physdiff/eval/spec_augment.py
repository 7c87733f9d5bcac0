"""Training-time augmentation of the metric classifier's spectrograms.

Why: the classifier behind FID/KID/KL/accuracy is trained on a few hundred clips from a few dozen
videos, and a video fixes the room (reverb, noise floor, hum) and the struck objects. Trained on the
plain spectrograms it memorises those (the ``tiny`` world: 99-100 % train accuracy, ~11 % on the
held-out videos, below the majority guess). Material lives in decay, brightness and the pattern of
modes, not in the exact bins an object rang in or the exact level of a room, so each training clip is
perturbed in ways that keep its material (SpecAugment, Park et al. 2019, plus a gain and an onset
jitter): a random gain (a constant offset of the log magnitude), a small shift of the onset in time,
``freq_masks`` frequency bands and one time span replaced by the clip's mean. Evaluation never
augments. Masks and shifts are fractions of the spectrogram's size, so the same settings suit
257 x 32 (``tiny``) and 1025 x 44 (``paper``) inputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["SpecAugmentSettings", "augment_spectrogram", "settings_from_eval"]

_NATS_PER_DB = math.log(10.0) / 20.0  # log-magnitude is ln|X|: 1 dB = ln(10) / 20 nats


@dataclass(frozen=True)
class SpecAugmentSettings:
    """What :func:`augment_spectrogram` draws per clip (all zero: the identity)."""

    gain: float = 0.0  # max |offset| in normalised units (uniform in [-gain, gain])
    shift: float = 0.0  # max |time shift| as a fraction of the frames (edge frames repeat)
    freq_mask: float = 0.0  # max width of each frequency mask as a fraction of the bins
    freq_masks: int = 0  # number of frequency masks
    time_mask: float = 0.0  # max width of the one time mask as a fraction of the frames

    @property
    def enabled(self) -> bool:
        return bool(self.gain > 0 or self.shift > 0 or (self.freq_mask > 0 and self.freq_masks > 0) or self.time_mask > 0)


def settings_from_config(c: Any, audio_cfg: Any) -> SpecAugmentSettings:
    """From a :class:`~physdiff.eval.config.ClassifierConfig`; the gain in dB becomes normalised units.

    ``normalize_spectrogram`` maps ln|X| in [spec_min, spec_max] to [-1, 1], so g dB is
    g * ln(10) / 20 * 2 / (spec_max - spec_min) in those units.
    """
    scale = 2.0 / (float(audio_cfg.spec_max) - float(audio_cfg.spec_min))
    return SpecAugmentSettings(
        gain=float(c.aug_gain_db) * _NATS_PER_DB * scale,
        shift=float(c.aug_shift),
        freq_mask=float(c.aug_freq_mask),
        freq_masks=int(c.aug_freq_masks),
        time_mask=float(c.aug_time_mask),
    )


def _band_mask(batch: int, length: int, max_frac: float, g: torch.Generator | None) -> Tensor:
    """(B, length) bool: one random span per row, width uniform in [0, max_frac * length]."""
    wmax = int(round(max_frac * length))
    width = torch.randint(0, wmax + 1, (batch,), generator=g)  # (B,)
    start = (torch.rand(batch, generator=g) * (length - width + 1)).long()  # (B,)
    pos = torch.arange(length)[None]  # (1, L)
    return (pos >= start[:, None]) & (pos < (start + width)[:, None])  # (B, L)


def augment_spectrogram(x: Tensor, s: SpecAugmentSettings, generator: torch.Generator | None = None) -> Tensor:
    """Perturb normalised log-magnitude spectrograms ``(B, 1, F, N)`` in [-1, 1]; returns the same shape.

    Random numbers come from ``generator`` (a CPU generator, default torch's global one; the draws are
    moved to ``x``'s device), so a seeded training run is reproducible. The result is clamped back to [-1, 1] like the input.
    """
    if not s.enabled:
        return x
    if x.dim() != 4 or x.shape[1] != 1:
        raise ValueError(f"augment_spectrogram expects (B, 1, F, N), got {tuple(x.shape)}")
    g = generator
    b, _, nf, nt = x.shape
    dev = x.device
    if s.shift > 0:  # onset jitter: x'[..., t] = x[..., t - d], edge frames repeated
        dmax = int(round(s.shift * nt))
        d = torch.randint(-dmax, dmax + 1, (b,), generator=g)  # (B,)
        idx = (torch.arange(nt)[None] - d[:, None]).clamp(0, nt - 1).to(dev)  # (B, N)
        x = torch.gather(x, 3, idx[:, None, None, :].expand(b, 1, nf, nt))  # (B, 1, F, N)
    if s.gain > 0:  # a level change is a constant offset of the log magnitude
        off = (torch.rand(b, generator=g) * 2 - 1) * s.gain  # (B,)
        x = (x + off.to(dev, x.dtype).view(b, 1, 1, 1)).clamp(-1.0, 1.0)
    fill = x.mean(dim=(2, 3), keepdim=True)  # (B, 1, 1, 1): masked cells carry no level information
    if s.freq_mask > 0:
        for _ in range(s.freq_masks):
            m = _band_mask(b, nf, s.freq_mask, g).to(dev)  # (B, F)
            x = torch.where(m[:, None, :, None], fill, x)
    if s.time_mask > 0:
        m = _band_mask(b, nt, s.time_mask, g).to(dev)  # (B, N)
        x = torch.where(m[:, None, None, :], fill, x)
    return x
