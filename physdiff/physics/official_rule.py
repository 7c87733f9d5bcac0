"""The official code's modal estimator, exactly (``physics.estimator=official``), vectorised over clips and bins.

The released model's priors were extracted by a Python double loop over 1025 STFT bins x 5,513 whole-clip
FFT points (``tools/extract_physics_params.py`` of sukun1045/video-physics-sound-diffusion). p and the time
to floor are the paper rule's (:func:`physdiff.physics.paper_rule.power_and_decay_from_stft`); only f
differs from :mod:`physdiff.physics.paper_rule`, in four places:

- **FFT grid.** The whole-clip FFT ``X = rfft(x)`` of the peak-normalised clip (no zero padding) is placed
  on ``linspace(0, sr / 2, len(X))``, not on j sr / T: with T = 11,025 that is 22050 / 5512 = 4.000363 Hz
  per point, so point j lies j x 0.000363 Hz above j sr / T: 1.0 Hz at 11 kHz, 2.0 Hz at Nyquist.
- **Window.** FFT point i counts for STFT bin k when ``|grid_i - c_k| <= 10.76`` Hz, with
  ``c_k = linspace(0, sr / 2, n_fft / 2 + 1)[k]`` (librosa's ``fft_frequencies``; k sr / n_fft exactly at
  44.1 kHz / 2048). 10.76 Hz is the official constant, a hair under half a bin (10.7666 Hz); at other STFT
  settings the window is the same fraction of a bin (``window_hz`` overrides it).
- **Gate.** The running maximum starts at 0 dB, so only points with ``20 log10 |X_i| > 0`` (|X| > 1 on the
  un-normalised FFT of the peak-normalised clip) can be picked; a bin with none keeps its centre c_k. Quiet
  or noise-like clips therefore keep many bin centres where the paper rule reads the FFT peak.
- **Ties.** A strict ``>`` keeps the first (lowest-frequency) of equal maxima.

The FFT, its dB values and both grids are float64, as numpy computes them, so the comparisons are the
official ones bit for bit wherever numpy and torch round alike; f is returned in the input's dtype.

Typical use (shards: ``physics.estimator=official``):

    modes = estimate_modes(audio, 44100, method="official")                     # (B, 11025) -> Modes (B, 1025)
    modes = estimate_modes(audio, 44100, method="official", decay_convention="t60")  # lambda = 60 / tau, as released

Cost: one float64 rfft per clip and a (B, D, W) gather with W = 6-8 points per bin, instead of the official
5.6 M-step Python loop (about 1.5-16 s per clip); ``bench/physics.py`` measures it beside the other rules.
"""

from __future__ import annotations

import math

import torch

from physdiff.physics.modes import Modes
from physdiff.physics.paper_rule import check_audio, power_and_decay_from_stft
from physdiff.physics.spectral import stft_complex

__all__ = [
    "OFFICIAL_WINDOW_HZ",
    "official_window_hz",
    "linspace_like_numpy",
    "official_peak_freq",
    "official_pick",
    "official_rule",
]

OFFICIAL_WINDOW_HZ = 10.76  # the official half-window, hard-coded for 44.1 kHz / n_fft 2048
_OFFICIAL_BIN_HZ = 44100 / 2048
_WINDOW_BINS = OFFICIAL_WINDOW_HZ / _OFFICIAL_BIN_HZ  # 0.4997 bin widths: the same window at other settings


def official_window_hz(sample_rate: float, n_fft: int) -> float:
    """The official +-window in Hz: 10.76 at 44.1 kHz / 2048, else the same fraction of a bin (0.4997 bin widths)."""
    if sample_rate == 44100 and n_fft == 2048:
        return OFFICIAL_WINDOW_HZ
    return _WINDOW_BINS * sample_rate / n_fft


def linspace_like_numpy(stop: float, num: int, device: torch.device | None = None) -> torch.Tensor:
    """``numpy.linspace(0, stop, num)`` bit for bit, float64 ``(num,)``.

    numpy computes ``arange(num) * (stop / (num - 1))`` and then sets the last point to ``stop``; torch's
    own linspace fills the upper half from the end (``stop - step * (num - 1 - i)``), which rounds
    differently in the last bits, and the window test compares distances to 10.76 Hz exactly.
    """
    if num == 1:
        return torch.zeros(1, dtype=torch.float64, device=device)
    step = stop / (num - 1)
    grid = torch.arange(num, dtype=torch.float64, device=device) * step  # (num,)
    grid[-1] = stop
    return grid


def official_peak_freq(
    audio: torch.Tensor,
    peak: torch.Tensor,
    sample_rate: float,
    n_fft: int,
    window_hz: float | None = None,
) -> torch.Tensor:
    """Per STFT bin, f by the official rule (module docstring). ``audio (B, T)``, its peak |x| ``(B,)`` -> ``(B, D)``.

    The clip need not be normalised: it is divided by ``peak`` in float64 first, as the official code's
    input is (the 0 dB gate depends on that scale). Silent clips (peak 0) keep every bin centre.
    """
    D = n_fft // 2 + 1
    half = official_window_hz(sample_rate, n_fft) if window_hz is None else float(window_hz)
    scale = torch.where(peak > 0, peak, torch.ones_like(peak)).to(torch.float64)  # (B,)
    x = audio.to(torch.float64) / scale[:, None]  # (B, T) the peak-normalised clip, float64 as numpy's FFT
    spec = torch.fft.rfft(x)  # (B, K), K = T // 2 + 1, no zero padding (official)
    mag_db = 20.0 * torch.log10(spec.abs())  # (B, K); |X| = 0 -> -inf, never picked
    grid = linspace_like_numpy(sample_rate / 2, spec.shape[-1], audio.device)  # (K,) the official FFT grid
    centres = linspace_like_numpy(sample_rate / 2, D, audio.device)  # (D,) librosa.fft_frequencies
    return official_pick(mag_db, grid, centres, half).to(audio.dtype)  # (B, D)


def official_pick(mag_db: torch.Tensor, grid: torch.Tensor, centres: torch.Tensor, half: float) -> torch.Tensor:
    """The official selection, vectorised: ``mag_db (B, K)`` dB values on ``grid (K,)`` Hz -> f ``(B, D)``
    for bins centred at ``centres (D,)`` Hz with the +-``half`` Hz window (all float64).

    Per bin: among the points with ``|grid_i - c_k| <= half``, the first one with the largest dB value,
    if that value is above 0 dB; otherwise c_k. This is the official loop's result: its running maximum
    starts at 0 dB and only a strict ``>`` replaces it.
    """
    if not half > 0 or not math.isfinite(half):
        raise ValueError(f"the official window must be a positive number of Hz, got {half}")
    B, K = mag_db.shape
    D = centres.shape[0]
    device = mag_db.device
    # Candidate points per bin: a superset of the window (one spare point each side, found on the nominal
    # spacing); the exact membership test |grid_i - c_k| <= half is then done on the real grid values.
    step = float(grid[-1] - grid[0]) / max(K - 1, 1) if K > 1 else 2 * half
    lo = torch.floor((centres - half) / step).long() - 1  # (D,)
    width = int(math.floor(2 * half / step)) + 4
    idx = lo[:, None] + torch.arange(width, device=device)[None, :]  # (D, W)
    valid = (idx >= 0) & (idx < K)
    idx = idx.clamp(0, K - 1)  # (D, W)
    inside = valid & ((grid[idx] - centres[:, None]).abs() <= half)  # (D, W) the official membership test
    neg_inf = torch.tensor(-math.inf, dtype=mag_db.dtype, device=device)
    vals = torch.where(inside[None], mag_db[:, idx], neg_inf)  # (B, D, W)
    # max(dim) returns the first of equal maxima: the official strict ">"; the gate keeps c_k unless the
    # maximum is above the loop's 0 dB start.
    best, pos = vals.max(dim=-1)  # (B, D)
    picked = grid[torch.gather(idx.expand(B, D, width), -1, pos[..., None]).squeeze(-1)]  # (B, D)
    return torch.where(best > 0.0, picked, centres.expand(B, D))  # (B, D)


def official_rule(
    audio: torch.Tensor,
    sample_rate: float,
    *,
    n_fft: int = 2048,
    hop_length: int = 256,
    floor_db: float = -80.0,
    decay_convention: str = "fit",
    window_hz: float | None = None,
) -> Modes:
    """The official estimator for a batch ``(B, T)`` -> Modes with ``(B, n_fft // 2 + 1)`` fields.

    f as in the module docstring; p and lambda exactly as the paper rule (first-frame dB; time to the
    floor, converted by ``decay_convention``: the official code itself uses "t60", lambda = 60 / tau).
    ``window_hz`` overrides the +-10.76 Hz window (default: :func:`official_window_hz`).
    """
    x, peak = check_audio(audio)  # (B, T), (B,)
    X = stft_complex(x, n_fft, hop_length)  # (B, F, N)
    pw = X.real.square() + X.imag.square()  # (B, F, N)
    power, decay = power_and_decay_from_stft(peak, pw, sample_rate, hop_length, floor_db, decay_convention, x.dtype)
    freq = official_peak_freq(x, peak, sample_rate, n_fft, window_hz)  # (B, F)
    return Modes(freq=freq, power=power, decay=decay)
