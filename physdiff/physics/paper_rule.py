"""The paper's per-bin modal estimation rule (Sec. 3.1), fully vectorised over clips and bins.

For a clip x (peak-normalised) and every STFT bin k (centre c_k = k sr / n_fft, half width
h = sr / (2 n_fft)):

- **f_k**: the frequency of the largest whole-clip FFT magnitude with |f - c_k| <= h. The whole-clip
  FFT is ``rfft(x)`` over all T samples (sr / T Hz resolution: 4 Hz for 0.25 s), zero-padded to
  n_fft samples when the clip is shorter than n_fft, so every bin's window holds at least one FFT
  bin. A bin whose window is all zero (silent clip) gets its centre frequency. ``fft_pad`` > 1
  zero-pads the whole-clip FFT to ``fft_pad`` x T samples: the same rule read on a finer grid
  (1 Hz at ``fft_pad=4``). The official grid (``fft_pad=1``) alone can be 2 Hz off a mode, so any
  skew from a neighbouring mode's tail pushes the estimate past half a grid step; at 4 Hz / 4 the
  rule stays within 2 Hz of well-separated modes (tests/physics/test_estimate.py).
- **p_k**: the first-frame value of the peak-normalised dB spectrogram (librosa
  ``amplitude_to_db(ref=max)``, floored at ``floor_db``).
- **time to floor** tau_k: the centre time of the first frame whose dB value is at the floor;
  ``num_frames`` frames (the clip length; 44 at the paper's settings) if it never gets there;
  half a frame if it is already there at frame 0 (the official code's conventions).
- **lambda_k** (dB/s, eq. 4):
  ``"fit"`` (default): ``(p_k - floor_db) / tau_k``, so eq. 4 with (f, p, lambda) falls from p_k to
  the floor exactly when the bin does; for a bin that never gets there this is a lower bound.
  ``"t60"``: the official code's ``60 / tau_k`` (the time to floor read as a T60).

Defined behaviour: any clip length T >= 1 works (D = n_fft // 2 + 1 always; N = T // hop + 1);
an all-zero clip gives f = bin centres, p = floor_db, lambda = 0 ("fit") or 60 / half-frame ("t60");
NaN / inf input raises ValueError naming the clips.
"""

from __future__ import annotations

import math

import torch

from physdiff.physics.modes import Modes
from physdiff.physics.spectral import AMIN, as_batch, bin_centers, stft_complex

__all__ = [
    "DECAY_CONVENTIONS",
    "check_audio",
    "paper_rule",
    "paper_rule_from_stft",
    "power_and_decay_from_stft",
    "time_to_floor",
    "decay_from_time",
    "fft_peak_freq",
]

DECAY_CONVENTIONS = ("fit", "t60")


def check_audio(audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Shape ``(B, T)`` / ``(T,)`` -> ``((B, T), peak (B,))``; ValueError for NaN / inf, naming the clips.

    One pass: the per-clip peak |x| is NaN / inf exactly when the clip holds a NaN / inf.
    """
    audio = as_batch(audio)
    peak = audio.abs().amax(dim=-1)  # (B,)
    finite = torch.isfinite(peak)
    if not bool(finite.all()):
        bad = (~finite).nonzero().flatten().tolist()
        shown = ", ".join(str(i) for i in bad[:10]) + (" ..." if len(bad) > 10 else "")
        raise ValueError(f"audio contains NaN or inf values in {len(bad)} clip(s) (batch index {shown})")
    return audio, peak


def fft_peak_freq(audio: torch.Tensor, sample_rate: float, n_fft: int, fft_pad: int = 1) -> torch.Tensor:
    """Per STFT bin, the frequency of the whole-clip FFT peak within +-half a bin. ``(B, T)`` -> ``(B, D)``.

    Vectorised as one gather of a fixed-width window of FFT bins per STFT bin (slots past a window's
    end point at an appended -1 column), instead of the official double loop over 1025 x 5513 bins.
    Scale-free (the clip need not be normalised); a bin whose window is all zero gets its centre.
    """
    if int(fft_pad) != fft_pad or fft_pad < 1:
        raise ValueError(f"fft_pad must be a whole number >= 1, got {fft_pad}")
    B, T = audio.shape
    L = max(T * int(fft_pad), n_fft)  # zero-pad short clips so each +-half-bin window holds >= 1 FFT bin
    spec = torch.fft.rfft(audio, n=L)  # (B, K)
    power = spec.real.square() + spec.imag.square()  # (B, K): same argmax as |.|, no sqrt
    K = power.shape[-1]
    power = torch.cat([power, power.new_full((B, 1), -1.0)], dim=-1)  # (B, K + 1), column K = sentinel
    df = sample_rate / L  # FFT bin spacing
    centers = bin_centers(n_fft, sample_rate, like=torch.empty(0, dtype=torch.float64))  # (D,) exact edges
    half = sample_rate / (2 * n_fft)
    # FFT bins j with |j df - c_k| <= half; 1e-9 guards float rounding on exact edges (kept inclusive).
    lo = torch.ceil((centers - half) / df - 1e-9).clamp_min(0).long()  # (D,)
    hi = torch.floor((centers + half) / df + 1e-9).clamp_max(K - 1).long()  # (D,)
    width = int((hi - lo).max().item()) + 1
    idx = lo[:, None] + torch.arange(width)[None, :]  # (D, W)
    idx = torch.where(idx <= hi[:, None], idx, torch.full_like(idx, K)).to(audio.device)  # (D, W)
    peak_val, peak_pos = power[:, idx].max(dim=-1)  # (B, D); ties -> first (lowest frequency)
    freq = (lo.to(audio.device)[None, :] + peak_pos).to(audio.dtype) * df  # (B, D)
    centers_t = centers.to(device=audio.device, dtype=audio.dtype)  # (D,)
    return torch.where(peak_val > 0, freq, centers_t.expand_as(freq))  # (B, D)


def time_to_floor(at_floor: torch.Tensor, hop_length: int, sample_rate: float, dtype: torch.dtype) -> torch.Tensor:
    """Seconds until each bin first sits at the floor (official conventions). ``(B, F, N)`` bool -> ``(B, F)``.

    First frame at the floor n -> n hops; at frame 0 -> half a hop; never -> N hops. The first True
    index is found as N - max((N - n) * at_floor) in a small integer type (one fused pass).
    """
    N = at_floor.shape[-1]
    itype = torch.uint8 if N <= 255 else torch.int32
    rank = torch.arange(N, 0, -1, device=at_floor.device, dtype=itype)  # (N,) N - n
    top = (at_floor.to(itype) * rank).amax(dim=-1)  # (B, F): N - first, or 0 if never
    frames = (N - top.to(dtype))  # never -> N frames already
    frames = torch.where(top == N, torch.full_like(frames, 0.5), frames)  # at frame 0 -> half a frame
    return frames * (hop_length / sample_rate)  # (B, F)


def decay_from_time(power: torch.Tensor, tau: torch.Tensor, floor_db: float, convention: str) -> torch.Tensor:
    """lambda (dB/s) from the first-frame power and the time to floor; see the module docstring."""
    if convention == "fit":
        return (power - floor_db).clamp_min(0.0) / tau
    if convention == "t60":
        return 60.0 / tau
    raise ValueError(f"unknown decay_convention {convention!r}; choose one of {DECAY_CONVENTIONS}")


def _validate(floor_db: float, decay_convention: str) -> None:
    if decay_convention not in DECAY_CONVENTIONS:
        raise ValueError(f"unknown decay_convention {decay_convention!r}; choose one of {DECAY_CONVENTIONS}")
    if not floor_db < 0 or not math.isfinite(floor_db):
        raise ValueError(f"floor_db must be a negative number, got {floor_db}")


def paper_rule(
    audio: torch.Tensor,
    sample_rate: float,
    *,
    n_fft: int = 2048,
    hop_length: int = 256,
    floor_db: float = -80.0,
    decay_convention: str = "fit",
    fft_pad: int = 1,
) -> Modes:
    """The paper's rule (Sec. 3.1) for a batch ``(B, T)`` -> Modes with ``(B, n_fft // 2 + 1)`` fields.

    ``fft_pad``: the whole-clip FFT for f is zero-padded to ``fft_pad`` x T (1 = the official grid)."""
    _validate(floor_db, decay_convention)
    x, peak = check_audio(audio)  # (B, T), (B,)
    X = stft_complex(x, n_fft, hop_length)  # (B, F, N)
    pw = X.real.square() + X.imag.square()  # (B, F, N) |X|^2 of the raw clip
    return paper_rule_from_stft(x, peak, pw, sample_rate, n_fft, hop_length, floor_db, decay_convention, fft_pad)


def paper_rule_from_stft(
    x: torch.Tensor,
    peak: torch.Tensor,
    pw: torch.Tensor,
    sample_rate: float,
    n_fft: int,
    hop_length: int,
    floor_db: float,
    decay_convention: str,
    fft_pad: int = 1,
) -> Modes:
    """The rule given a clip ``x (B, T)`` (not necessarily normalised), its peak |x| ``(B,)`` and its
    power spectrogram ``pw = |STFT|^2 (B, F, N)``: p and lambda by :func:`power_and_decay_from_stft`, f by
    :func:`fft_peak_freq`.
    """
    power, decay = power_and_decay_from_stft(peak, pw, sample_rate, hop_length, floor_db, decay_convention, x.dtype)
    freq = fft_peak_freq(x, sample_rate, n_fft, fft_pad)  # (B, F)
    return Modes(freq=freq, power=power, decay=decay)


def power_and_decay_from_stft(
    peak: torch.Tensor,
    pw: torch.Tensor,
    sample_rate: float,
    hop_length: int,
    floor_db: float,
    decay_convention: str,
    dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor]:
    """p (dB, first frame) and lambda (dB/s) of every bin, ``(B, F)`` each, from the clip's peak |x| ``(B,)``
    and its power spectrogram ``pw = |STFT|^2 (B, F, N)``: the part of the rule shared by every estimator
    that reads p and the time to floor off the spectrogram ("paper", "official", highres's fallback).

    Works in the power domain on the raw clip: peak normalisation only rescales |X| (and librosa's
    amin = 1e-5 on the normalised clip becomes amin * peak), so
    ``dB = 20 log10(max(|X|, amin) / max(ref, amin))`` is at the floor exactly when
    ``|X|^2 <= thr^2`` and ``amin <= thr`` with ``thr = max(ref, amin) 10^(floor/20)``: no log and no
    sqrt over the (B, F, N) spectrogram, only over the first frame.
    """
    _validate(floor_db, decay_convention)
    amin2 = (AMIN * peak).square()[:, None, None]  # (B, 1, 1) librosa's amin, in raw units, squared
    ref2 = pw.amax(dim=(-2, -1), keepdim=True).clamp_min(amin2)  # (B, 1, 1)
    thr2 = ref2 * 10.0 ** (floor_db / 10.0)  # (B, 1, 1)
    silent = (peak <= 0)[:, None, None]  # (B, 1, 1): defined as "at the floor everywhere"
    at_floor = (pw <= thr2) & ((amin2 <= thr2) | silent)  # (B, F, N)
    p0 = 10.0 * torch.log10(pw[..., 0].clamp_min(amin2[..., 0]) / ref2[..., 0])  # (B, F) first frame, dB
    power = torch.where(silent[..., 0], torch.full_like(p0, floor_db), p0.clamp_min(floor_db))  # (B, F)
    tau = time_to_floor(at_floor, hop_length, sample_rate, dtype)  # (B, F)
    decay = decay_from_time(power, tau, floor_db, decay_convention)  # (B, F)
    return power, decay
