"""The residual (non-modal) part of an impact sound, eqs. 5-6: decaying band-passed noise.

    r(t) = sum_m w_m 10^(-gamma_m t / 20) n_m(t)

with n_m the m-th band of one fixed Gaussian white-noise draw (seedable), M bands spaced on the mel
(or log) scale from ``fmin`` to Nyquist, gamma_m a decay in dB/s (as lambda in eq. 4) and w_m a
weight. Each band is an exact FFT-domain band-pass (brick-wall mask on the draw's spectrum), the
bands tile [fmin, Nyquist] without overlap, and each band is scaled to unit RMS, so w_m is the
band's RMS amplitude at t = 0 whatever its width. Differentiable in gamma and w; batched.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from physdiff.physics.spectral import LN10_OVER_20, peak_normalize

__all__ = ["band_edges", "band_noise", "synthesize_residual", "ResidualNoise", "SPACINGS", "modal_plus_residual"]

SPACINGS = ("mel", "log")


def _hz_to_mel(f: torch.Tensor) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + f / 700.0)


def _mel_to_hz(m: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def band_edges(num_bands: int, sample_rate: float, fmin: float = 20.0, spacing: str = "mel") -> torch.Tensor:
    """``num_bands + 1`` band edges in Hz from ``fmin`` to Nyquist, mel- or log-spaced. ``(M + 1,)`` float64."""
    nyq = sample_rate / 2.0
    if num_bands < 1:
        raise ValueError(f"num_bands must be >= 1, got {num_bands}")
    if not 0 < fmin < nyq:
        raise ValueError(f"fmin must be in (0, Nyquist={nyq}), got {fmin}")
    lo, hi = torch.tensor(fmin, dtype=torch.float64), torch.tensor(nyq, dtype=torch.float64)
    if spacing == "mel":
        mels = torch.linspace(float(_hz_to_mel(lo)), float(_hz_to_mel(hi)), num_bands + 1, dtype=torch.float64)
        return _mel_to_hz(mels)
    if spacing == "log":
        return torch.logspace(math.log10(fmin), math.log10(nyq), num_bands + 1, dtype=torch.float64)
    raise ValueError(f"unknown band spacing {spacing!r}; choose one of {SPACINGS}")


def band_noise(
    num_bands: int,
    sample_rate: float,
    num_samples: int,
    *,
    fmin: float = 20.0,
    spacing: str = "mel",
    seed: int = 0,
) -> torch.Tensor:
    """M unit-RMS bands of one fixed white Gaussian noise draw (eq. 5's n_m). ``(M, T)`` float32.

    Band m holds the draw's FFT bins with edge_m <= f < edge_{m+1} (the last band includes Nyquist).
    Each band gets at least one FFT bin: where bands are narrower than the FFT resolution
    (sample_rate / num_samples), the lowest edges are pushed up one bin at a time, so the lowest
    log-spaced bands are stretched to the resolution. ValueError if there are more bands than FFT
    bins above ``fmin``. The same (num_bands, sample_rate, num_samples, fmin, spacing, seed) always
    gives the same tensor (CPU generator).
    """
    if num_samples < 2:
        raise ValueError(f"num_samples must be >= 2, got {num_samples}")
    edges = band_edges(num_bands, sample_rate, fmin, spacing)  # (M + 1,) Hz
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(num_samples, generator=gen, dtype=torch.float64)  # (T,)
    spec = torch.fft.rfft(noise)  # (K,)
    K = spec.shape[0]
    df = sample_rate / num_samples
    idx = torch.ceil(edges / df - 1e-9).long()  # (M + 1,) first FFT bin of each band
    idx[-1] = K  # the last band runs through Nyquist
    # Enforce >= 1 bin per band (strictly increasing starts), from the bottom up.
    starts = idx[:-1] - torch.arange(num_bands)  # remove the forced +1 steps, then cummax restores order
    starts = torch.cummax(starts, 0).values + torch.arange(num_bands)  # (M,)
    if int(starts[-1]) >= K:
        raise ValueError(
            f"{num_bands} bands do not fit in the {K - int(idx[0])} FFT bins above fmin={fmin} Hz "
            f"(sample_rate {sample_rate}, {num_samples} samples)"
        )
    stops = torch.cat([starts[1:], torch.tensor([K])])  # (M,)
    k = torch.arange(K)
    masks = (k[None, :] >= starts[:, None]) & (k[None, :] < stops[:, None])  # (M, K)
    bands = torch.fft.irfft(spec[None, :] * masks, n=num_samples)  # (M, T)
    rms = bands.pow(2).mean(-1, keepdim=True).sqrt()  # (M, 1)
    return (bands / rms.clamp_min(1e-12)).float()  # (M, T)


def synthesize_residual(
    gamma: torch.Tensor, weight: torch.Tensor, bands: torch.Tensor, sample_rate: float
) -> torch.Tensor:
    """Eq. 6: ``sum_m w_m 10^(-gamma_m t / 20) n_m(t)``. gamma, weight ``(B, M)``; bands ``(M, T)`` -> ``(B, T)``.

    gamma in dB/s (t = n / sample_rate). Differentiable in gamma and weight (and bands).
    Memory: one ``(B, M, T)`` envelope (about 70 MB at B 16, M 100, T 11025 in float32).
    """
    if gamma.shape != weight.shape or gamma.dim() != 2 or gamma.shape[1] != bands.shape[0]:
        raise ValueError(
            f"gamma {tuple(gamma.shape)} and weight {tuple(weight.shape)} must be (B, M) with "
            f"M = bands.shape[0] = {bands.shape[0]}"
        )
    T = bands.shape[1]
    t = torch.arange(T, device=bands.device, dtype=bands.dtype) / sample_rate  # (T,)
    env = torch.exp(-(gamma[..., None] * t) * LN10_OVER_20) * weight[..., None]  # (B, M, T)
    return torch.einsum("bmt,mt->bt", env, bands.to(env.dtype))  # (B, T)


class ResidualNoise(nn.Module):
    """Eqs. 5-6 as a module holding the fixed noise bands as a (non-persistent) buffer.

    The bands are regenerated from (num_bands, sample_rate, num_samples, fmin, spacing, seed), so
    they are not written into checkpoints. ``forward(gamma (B, M), weight (B, M)) -> (B, T)``.
    """

    def __init__(
        self,
        num_bands: int = 100,
        sample_rate: float = 44100,
        num_samples: int = 11025,
        fmin: float = 20.0,
        spacing: str = "mel",
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.num_bands, self.sample_rate, self.num_samples = num_bands, sample_rate, num_samples
        self.fmin, self.spacing, self.seed = fmin, spacing, seed
        bands = band_noise(num_bands, sample_rate, num_samples, fmin=fmin, spacing=spacing, seed=seed)
        self.register_buffer("bands", bands, persistent=False)  # (M, T)

    def forward(self, gamma: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return synthesize_residual(gamma, weight, self.bands, self.sample_rate)  # (B, T)

    def extra_repr(self) -> str:
        return (
            f"num_bands={self.num_bands}, sample_rate={self.sample_rate}, num_samples={self.num_samples}, "
            f"fmin={self.fmin}, spacing={self.spacing!r}, seed={self.seed}"
        )


def modal_plus_residual(modal: torch.Tensor, residual: torch.Tensor, *, normalize_modal: bool) -> torch.Tensor:
    """The full resynthesis (eqs. 4 + 6), peak-normalised: ``(B, T)``, ``(B, T)`` -> ``(B, T)``.

    ``normalize_modal=True`` (the official code, ``prior.normalize_modal`` in ``paper``) adds the residual to
    the modal signal divided by its peak, so w_m is a band's RMS level relative to a unit-peak modal part
    whatever the number and level of the modes; ``False`` adds it to the raw eq.-4 sum (whose peak grows with
    the number of loud modes). Either way the sum is then divided by its peak, as the recording is.
    """
    if normalize_modal:
        modal = peak_normalize(modal)  # (B, T)
    return peak_normalize(modal + residual)  # (B, T)
