"""Sound editing on the interpretable physics priors (the paper's Sec. 4.4 "editing" use case).

The priors are physical: each mode is a frequency f (Hz), an initial level p (dB) and a decay
lambda (dB/s) (eq. 4); the residual is M noise bands with a decay gamma (dB/s) and a weight w
(eqs. 5-6). An edit changes them directly and the sound is resynthesised from them:

- ``freq_scale`` s: every f -> s f (a smaller / stiffer object rings higher: f ~ sqrt(k / m)).
  Modes pushed to or past Nyquist are muted (they would alias).
- ``decay_scale`` s: every lambda -> s lambda (s < 1 rings longer: less damping).
  ``residual_decay_scale`` does the same to gamma (default: ``decay_scale``, one material damping).
- ``mute_hz`` [lo, hi] (or a list of such ranges): modes with lo <= f <= hi go to ``floor_db``
  (the estimator's -80 dB floor, so the priors stay in the range the physics encoder saw), and
  residual bands that overlap the range get weight 0.
- ``modal_gain_db`` g: every p -> p + g; ``residual_gain_db`` g: every w -> 10^(g/20) w.

Edits apply in that order (scale frequencies first, so ``mute_hz`` refers to the edited sound).

Ranges (an edit outside them is an :class:`EditError` naming the key, before anything is computed): scales
in [1e-3, 1e3] (``decay_scale`` / ``residual_decay_scale`` may be 0: no damping), gains in [-120, 120] dB
(an amplitude ratio of 10^6; beyond it float32 overflows to an all-NaN clip), ``mute_hz`` finite
``0 <= lo < hi``. :func:`write_edit_outputs` refuses to write a clip that is not finite.
The diffusion path (conditioning the denoiser on the edited priors) lives with the generate
stage; this module is the direct modal + residual resynthesis and the before/after outputs::

    spec = EditSpec.from_dict({"freq_scale": 1.2, "decay_scale": 0.5, "mute_hz": [2000, 4000], "residual_gain_db": -6})
    result = edit_clip(modes, gamma, weight, spec, residual, out_dir="run/edits", name="clip042")
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from physdiff.errors import PhysdiffError
from physdiff.physics import Modes, ResidualNoise, band_edges, db_spectrogram, peak_normalize, synthesize_modes

__all__ = ["EditSpec", "EditError", "EditResult", "apply_edit", "resynthesize", "edit_clip", "write_edit_outputs"]

SCALE_RANGE = (1e-3, 1e3)
GAIN_DB_RANGE = (-120.0, 120.0)


class EditError(PhysdiffError, ValueError):
    """An edit key, value or type that is not allowed; the message names the key (a ValueError too)."""


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _ranges(value: Any) -> tuple[tuple[float, float], ...]:
    """``[lo, hi]`` or ``[[lo, hi], ...]`` -> validated ``((lo, hi), ...)``."""
    if value is None or value == [] or value == ():
        return ()
    if not isinstance(value, (list, tuple)):
        raise EditError(f"mute_hz takes [lo, hi] or a list of [lo, hi] pairs (Hz), got {value!r}")
    items = value if isinstance(value[0], (list, tuple)) else [value]
    out = []
    for r in items:
        if not isinstance(r, (list, tuple)) or len(r) != 2 or not all(_is_number(x) for x in r):
            raise EditError(f"mute_hz ranges are [lo, hi] pairs of numbers (Hz), got {r!r}")
        lo, hi = float(r[0]), float(r[1])
        if not (math.isfinite(lo) and math.isfinite(hi) and 0.0 <= lo < hi):
            raise EditError(f"mute_hz range needs finite 0 <= lo < hi, got [{lo}, {hi}]")
        out.append((lo, hi))
    return tuple(out)


@dataclass(frozen=True)
class EditSpec:
    """A small edit of the physics priors (see the module docstring for each field's meaning)."""

    freq_scale: float = 1.0
    decay_scale: float = 1.0
    residual_decay_scale: float | None = None  # None: same as decay_scale
    mute_hz: tuple[tuple[float, float], ...] = field(default=())
    modal_gain_db: float = 0.0
    residual_gain_db: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "mute_hz", _ranges(self.mute_hz))
        for name in ("freq_scale", "decay_scale", "residual_decay_scale", "modal_gain_db", "residual_gain_db"):
            v = getattr(self, name)
            if v is not None and not _is_number(v):
                raise EditError(f"edit {name} takes a number, got {v!r}")
        lo, hi = SCALE_RANGE
        if not lo <= self.freq_scale <= hi:  # False for NaN too
            raise EditError(f"edit freq_scale must be in [{lo:g}, {hi:g}], got {self.freq_scale}")
        for name in ("decay_scale", "residual_decay_scale"):
            v = getattr(self, name)
            if v is not None and not (v == 0 or lo <= v <= hi):
                raise EditError(f"edit {name} must be 0 or in [{lo:g}, {hi:g}], got {v}")
        glo, ghi = GAIN_DB_RANGE
        for name in ("modal_gain_db", "residual_gain_db"):
            v = getattr(self, name)
            if not glo <= v <= ghi:
                raise EditError(f"edit {name} must be in [{glo:g}, {ghi:g}] dB, got {v}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EditSpec":
        """Build from a JSON-like dict; unknown keys are an error naming the valid ones."""
        names = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(d, dict):
            raise EditError(f"edits are a JSON object of {{key: value}}, got {type(d).__name__} {d!r}")
        unknown = sorted(set(map(str, d)) - names)
        if unknown:
            raise EditError(f"unknown edit keys {unknown}; valid keys: {sorted(names)}")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["mute_hz"] = [list(r) for r in self.mute_hz]
        return d


def apply_edit(
    modes: Modes,
    gamma: torch.Tensor,
    weight: torch.Tensor,
    spec: EditSpec,
    sample_rate: float,
    residual_band_edges: torch.Tensor | None = None,
    floor_db: float = -80.0,
) -> tuple[Modes, torch.Tensor, torch.Tensor]:
    """Edit modes ``(B, D)`` and residual ``gamma, weight (B, M)``; returns new tensors (inputs untouched).

    ``residual_band_edges`` (M + 1,) Hz locates the residual bands for ``mute_hz`` (take them from
    :func:`physdiff.physics.band_edges` with the residual's settings); needed only when muting.
    """
    if gamma.shape != weight.shape or gamma.dim() != 2 or gamma.shape[0] != modes.batch_size:
        raise ValueError(f"residual gamma {tuple(gamma.shape)} and weight {tuple(weight.shape)} must be (B={modes.batch_size}, M)")
    nyquist = sample_rate / 2.0
    freq = modes.freq * spec.freq_scale  # (B, D)
    decay = modes.decay * spec.decay_scale  # (B, D)
    power = modes.power + spec.modal_gain_db  # (B, D)
    muted = freq >= nyquist  # (B, D): would alias
    for lo, hi in spec.mute_hz:
        muted = muted | ((freq >= lo) & (freq <= hi))
    power = torch.where(muted, torch.full_like(power, floor_db), power)  # (B, D)

    rscale = spec.decay_scale if spec.residual_decay_scale is None else spec.residual_decay_scale
    gamma = gamma * rscale  # (B, M)
    weight = weight * (10.0 ** (spec.residual_gain_db / 20.0))  # (B, M)
    if spec.mute_hz and weight.shape[1]:  # M = 0 (modal only): no residual band to mute
        if residual_band_edges is None:
            raise ValueError("mute_hz needs residual_band_edges to find the residual bands in the range")
        edges = residual_band_edges.to(weight.device, torch.float64)  # (M + 1,)
        if edges.numel() != weight.shape[1] + 1:
            raise ValueError(f"residual_band_edges has {edges.numel()} edges for {weight.shape[1]} bands")
        lo_e, hi_e = edges[:-1], edges[1:]  # (M,)
        hit = torch.zeros_like(lo_e, dtype=torch.bool)
        for lo, hi in spec.mute_hz:
            hit |= (hi_e > lo) & (lo_e < hi)  # any overlap: mute the whole band (never leak energy)
        weight = torch.where(hit[None, :], torch.zeros_like(weight), weight)  # (B, M)
    return Modes(freq, power, decay), gamma, weight


def resynthesize(
    modes: Modes,
    gamma: torch.Tensor,
    weight: torch.Tensor,
    residual: ResidualNoise | None,
    sample_rate: float,
    num_samples: int,
    normalize: bool = True,
    normalize_modal: bool = False,
) -> torch.Tensor:
    """Modal (eq. 4) + residual (eq. 6) audio ``(B, T)``, peak-normalised as in the official code.

    ``normalize_modal``: the residual is added to the unit-peak modal signal, as the prior stage trained it
    with ``prior.normalize_modal`` (physdiff.physics.modal_plus_residual), so w means what it meant there.
    """
    from physdiff.physics import modal_plus_residual

    audio = synthesize_modes(modes, sample_rate, num_samples)  # (B, T)
    if residual is None:
        return peak_normalize(audio) if normalize else audio
    if residual.num_samples != num_samples or residual.sample_rate != sample_rate:
        raise ValueError(
            f"residual bands are for {residual.num_samples} samples at {residual.sample_rate} Hz, "
            f"resynthesis asked for {num_samples} at {sample_rate} Hz"
        )
    resid = residual(gamma.to(audio.dtype), weight.to(audio.dtype))  # (B, T)
    if normalize:
        return modal_plus_residual(audio, resid, normalize_modal=normalize_modal)  # (B, T)
    return (peak_normalize(audio) if normalize_modal else audio) + resid


@dataclass
class EditResult:
    before: torch.Tensor  # (B, T)
    after: torch.Tensor  # (B, T)
    modes: Modes
    gamma: torch.Tensor
    weight: torch.Tensor
    paths: list[dict[str, Path]] = field(default_factory=list)


def write_edit_outputs(
    out_dir: str | Path,
    name: str,
    before: torch.Tensor,
    after: torch.Tensor,
    sample_rate: int,
    n_fft: int = 2048,
    hop_length: int = 256,
    title: str = "",
) -> dict[str, Path]:
    """Write ``<name>_before.wav``, ``<name>_after.wav`` (float WAV) and ``<name>_spectrogram.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import soundfile as sf

    out_dir = Path(out_dir)
    before, after = before.detach().float().cpu().reshape(-1), after.detach().float().cpu().reshape(-1)  # (T,)
    for label, clip in (("before", before), ("after", after)):
        if not bool(torch.isfinite(clip).all()):
            bad = int((~torch.isfinite(clip)).sum())
            raise PhysdiffError(f"the {name} {label} clip has {bad} non-finite samples of {clip.numel()} ({title or 'no edit'}); "
                                f"nothing written to {out_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"before_wav": out_dir / f"{name}_before.wav", "after_wav": out_dir / f"{name}_after.wav"}
    sf.write(paths["before_wav"], before.numpy(), int(sample_rate), subtype="FLOAT")
    sf.write(paths["after_wav"], after.numpy(), int(sample_rate), subtype="FLOAT")

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), sharey=True, constrained_layout=True)
    dur = before.numel() / sample_rate
    for ax, audio, label in ((axes[0], before, "before"), (axes[1], after, "after")):
        db = db_spectrogram(audio[None], n_fft, hop_length)[0].numpy()  # (F, N), 0 dB at the peak
        im = ax.imshow(db, origin="lower", aspect="auto", extent=(0, dur, 0, sample_rate / 2000.0), vmin=-80, vmax=0, cmap="magma")
        ax.set_title(label)
        ax.set_xlabel("time (s)")
    axes[0].set_ylabel("frequency (kHz)")
    fig.colorbar(im, ax=axes, label="dB")
    if title:
        fig.suptitle(title, fontsize=9)
    paths["spectrogram_png"] = out_dir / f"{name}_spectrogram.png"
    fig.savefig(paths["spectrogram_png"], dpi=100)
    plt.close(fig)
    return paths


def edit_clip(
    modes: Modes,
    gamma: torch.Tensor,
    weight: torch.Tensor,
    spec: EditSpec | dict[str, Any],
    residual: ResidualNoise,
    out_dir: str | Path | None = None,
    name: str = "edit",
    floor_db: float = -80.0,
    n_fft: int = 2048,
    hop_length: int = 256,
) -> EditResult:
    """Edit the priors of a batch of clips and resynthesise before/after; optionally write the files.

    The residual module fixes the sample rate, clip length and band layout. With ``out_dir``,
    clip b is written as ``<name>_<b>_{before,after}.wav`` + ``_spectrogram.png`` (just ``<name>``
    for a single clip).
    """
    if isinstance(spec, dict):
        spec = EditSpec.from_dict(spec)
    sr, T = residual.sample_rate, residual.num_samples
    edges = band_edges(residual.num_bands, sr, residual.fmin, residual.spacing)  # (M + 1,)
    new_modes, new_gamma, new_weight = apply_edit(modes, gamma, weight, spec, sr, edges, floor_db)
    with torch.no_grad():
        before = resynthesize(modes, gamma, weight, residual, sr, T)  # (B, T)
        after = resynthesize(new_modes, new_gamma, new_weight, residual, sr, T)  # (B, T)
    result = EditResult(before, after, new_modes, new_gamma, new_weight)
    if out_dir is not None:
        title = ", ".join(f"{k}={v}" for k, v in spec.to_dict().items() if v not in (None, 1.0, 0.0, []))
        for b in range(before.shape[0]):
            stem = name if before.shape[0] == 1 else f"{name}_{b}"
            result.paths.append(write_edit_outputs(out_dir, stem, before[b], after[b], int(sr), n_fft, hop_length, title))
    return result
