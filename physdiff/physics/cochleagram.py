"""Cochleagram: subband envelopes on an ERB-spaced cosine filterbank (Owens et al., CVPR 2016, Sec. 3).

The sound feature of the "Visually Indicated Sounds" baseline (paper Table 3, "NN via predicted sound
features"). Owens et al. decompose the waveform w(t) into subband envelopes

    s_n = D(|(w * f_n) + j H(w * f_n)|)^c,      c = 0.3,

with f_n 40 band-pass filters equally spaced on the ERB scale plus a low-pass and a high-pass filter
(42 channels), H the Hilbert transform, D a downsampling to 90 Hz (3 samples per 29.97 fps video frame).
The filterbank is McDermott & Simoncelli's (Neuron 2011): zero-phase filters whose frequency response is
the positive lobe of a cosine over two neighbouring cutoffs on the ERB-number scale (Glasberg & Moore
1990), so neighbouring filters overlap by half and their squared responses sum to one at every frequency
(the bank tiles the spectrum and is invertible: :func:`resynthesize` reconstructs the input exactly).

Implementation: no cochleagram library is installed here (neither ``pycochleagram`` nor ``gammatone``), so
this file writes it in torch (a few lines; torchaudio has mel and linear filterbanks but no ERB one):

- filters and the analytic signal in the frequency domain of one full-length FFT of the clip
  (analytic = the one-sided spectrum, doubled, times the filter; its modulus is the Hilbert envelope);
- downsampling by the mean over consecutive windows of ``sample_rate / rate`` samples (a box
  anti-aliasing filter, exact for non-integer ratios: 44100 / 89.91 = 490.5 samples), computed from
  the linearly interpolated running integral of the envelope;
- compression ``envelope ** c`` (after the mean, as in Owens et al.'s formula above).

    coch = cochleagram(audio, sample_rate=44100, rate=3 * 30000 / 1001)   # (B, 42, 23) for 0.25 s
    bank = erb_filterbank(num_samples, sample_rate)                         # (42, T//2+1), bank.centers (42,)

Batched, device-following, differentiable (away from zero envelopes, where x ** 0.3 has an infinite slope).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from physdiff.physics.spectral import as_batch, peak_normalize

__all__ = ["freq_to_erb", "erb_to_freq", "ErbFilterbank", "erb_filterbank", "subbands", "envelopes",
           "downsample_mean", "cochleagram", "cochleagram_length", "resynthesize"]


def freq_to_erb(f: Tensor | float) -> Tensor:
    """Hz -> ERB number (Glasberg & Moore 1990, McDermott & Simoncelli's form): 9.265 ln(1 + f / (24.7 * 9.265))."""
    f = torch.as_tensor(f, dtype=torch.float64)
    return 9.265 * torch.log1p(f / (24.7 * 9.265))


def erb_to_freq(e: Tensor | float) -> Tensor:
    """ERB number -> Hz, the inverse of :func:`freq_to_erb`."""
    e = torch.as_tensor(e, dtype=torch.float64)
    return 24.7 * 9.265 * torch.expm1(e / 9.265)


@dataclass
class ErbFilterbank:
    """Frequency responses ``response`` (C, T//2+1) on the rfft grid of a T-sample clip; channel 0 is the
    low-pass, channel C-1 the high-pass, 1..C-2 the band-passes; ``centers`` (C,) their centre in Hz
    (0 and Nyquist for the low- and high-pass)."""

    response: Tensor
    centers: Tensor
    num_samples: int
    sample_rate: float

    @property
    def num_channels(self) -> int:
        return self.response.shape[0]


def erb_filterbank(num_samples: int, sample_rate: float, num_bands: int = 40, fmin: float = 20.0,
                   fmax: float = 0.0, *, device: torch.device | str | None = None,
                   dtype: torch.dtype = torch.float32) -> ErbFilterbank:
    """McDermott & Simoncelli's half-cosine ERB filterbank: ``num_bands`` band-passes + low-pass + high-pass.

    Cutoffs c_0 .. c_{n+1} equally spaced in ERB number between ``fmin`` and ``fmax`` (0 = Nyquist); band k
    (1..n) is cos(pi (e - c_k) / (2 d)) for |e - c_k| <= d (d the cutoff spacing), the low-pass is 1 below
    c_0 and falls as a half cosine to c_1, the high-pass rises from c_n to c_{n+1} and is 1 above it. So
    the squared responses sum to exactly 1 at every frequency (cos^2 + sin^2 on each overlap).
    """
    nyq = sample_rate / 2.0
    fmax = fmax or nyq
    if num_samples < 2:
        raise ValueError(f"cochleagram needs at least 2 samples, got {num_samples}")
    if not 0.0 < fmin < fmax <= nyq:
        raise ValueError(f"cochleagram needs 0 < fmin < fmax <= Nyquist ({nyq} Hz), got fmin {fmin}, fmax {fmax}")
    if num_bands < 1:
        raise ValueError(f"cochleagram needs at least one band-pass filter, got {num_bands}")
    freqs = torch.fft.rfftfreq(num_samples, 1.0 / sample_rate, dtype=torch.float64)  # (K,)
    e = freq_to_erb(freqs)  # (K,)
    cut = torch.linspace(float(freq_to_erb(fmin)), float(freq_to_erb(fmax)), num_bands + 2, dtype=torch.float64)  # (n+2,)
    d = cut[1] - cut[0]
    centers_e = cut[1:-1]  # (n,) band centres in ERB
    u = (e[None, :] - centers_e[:, None]) / d  # (n, K) distance from each centre in cutoff spacings
    bands = torch.where(u.abs() <= 1.0, torch.cos(0.5 * math.pi * u.clamp(-1.0, 1.0)), torch.zeros_like(u))  # (n, K)
    ul = ((e - cut[0]) / d).clamp(0.0, 1.0)  # (K,) 0 below c_0, 1 above c_1
    low = torch.cos(0.5 * math.pi * ul)  # 1 below c_0, half-cosine fall to 0 at c_1
    uh = ((e - cut[-2]) / d).clamp(0.0, 1.0)  # 0 below c_n, 1 above c_{n+1}
    high = torch.sin(0.5 * math.pi * uh)  # 0 below c_n, rises to 1 at c_{n+1}
    resp = torch.cat([low[None], bands, high[None]])  # (n+2, K)
    centers = torch.cat([torch.zeros(1, dtype=torch.float64), erb_to_freq(centers_e),
                         torch.full((1,), nyq, dtype=torch.float64)])  # (n+2,)
    return ErbFilterbank(resp.to(device=device, dtype=dtype), centers.to(dtype), num_samples, float(sample_rate))


def subbands(audio: Tensor, bank: ErbFilterbank, analytic: bool = False) -> Tensor:
    """The filtered signals (B, C, T): real subbands, or with ``analytic=True`` their analytic signals
    (complex; real part = the subband, imaginary part = its Hilbert transform)."""
    audio = as_batch(audio)
    t = audio.shape[-1]
    if t != bank.num_samples:
        raise ValueError(f"filterbank built for {bank.num_samples} samples, audio has {t}")
    spec = torch.fft.rfft(audio.to(bank.response.dtype), dim=-1)  # (B, K)
    filt = spec[:, None, :] * bank.response.to(spec.device)[None]  # (B, C, K)
    if not analytic:
        return torch.fft.irfft(filt, n=t, dim=-1)  # (B, C, T)
    # Analytic signal: keep positive frequencies doubled, DC (and Nyquist for even T) once, negatives zero.
    k = filt.shape[-1]
    weight = torch.full((k,), 2.0, device=filt.device, dtype=bank.response.dtype)  # (K,)
    weight[0] = 1.0
    if t % 2 == 0:
        weight[-1] = 1.0
    full = torch.zeros(*filt.shape[:-1], t, dtype=filt.dtype, device=filt.device)  # (B, C, T)
    full[..., :k] = filt * weight
    return torch.fft.ifft(full, dim=-1)  # (B, C, T) complex


def envelopes(audio: Tensor, bank: ErbFilterbank) -> Tensor:
    """Hilbert envelopes |analytic subband| at the audio rate: (B, T) -> (B, C, T)."""
    return subbands(audio, bank, analytic=True).abs()


def cochleagram_length(num_samples: int, sample_rate: float, rate: float) -> int:
    """Envelope samples of a ``num_samples`` clip at ``rate`` Hz: ceil(T / (sample_rate / rate))."""
    return max(1, math.ceil(num_samples * rate / sample_rate - 1e-9))


def downsample_mean(x: Tensor, factor: float) -> Tensor:
    """Mean of x over consecutive windows of ``factor`` (real, >= 1) samples: (..., T) -> (..., ceil(T/factor)).

    Window s covers [s * factor, (s + 1) * factor); the last one is cut at T and averages what it has.
    Uses the running integral of x (piecewise constant x, so the integral is exact at fractional ends).
    """
    if factor < 1.0:
        raise ValueError(f"downsampling factor must be >= 1, got {factor}")
    t = x.shape[-1]
    s = cochleagram_length(t, factor, 1.0)
    ctype = torch.float64
    csum = torch.nn.functional.pad(x.to(ctype).cumsum(-1), (1, 0))  # (..., T+1): integral up to each sample edge
    edges = (torch.arange(s + 1, device=x.device, dtype=ctype) * factor).clamp(max=t)  # (S+1,)
    lo = edges.floor().long().clamp(max=t - 1)  # (S+1,) the sample each edge falls in
    frac = edges - lo.to(ctype)  # (S+1,) in [0, 1]
    xv = x.to(ctype)
    integral = csum[..., lo] + frac * xv[..., lo]  # (..., S+1): exact integral of the step function up to each edge
    width = edges[1:] - edges[:-1]  # (S,)
    return ((integral[..., 1:] - integral[..., :-1]) / width).to(x.dtype)  # (..., S)


def cochleagram(audio: Tensor, sample_rate: float, rate: float = 3 * 30000 / 1001, *, num_bands: int = 40,
                fmin: float = 20.0, fmax: float = 0.0, compression: float = 0.3, normalize: bool = True,
                bank: ErbFilterbank | None = None) -> Tensor:
    """Owens et al.'s sound features: (B, T) audio -> (B, num_bands + 2, S) compressed subband envelopes.

    ``rate`` is the envelope rate in Hz (default 3 per 29.97 fps frame = 89.91 Hz, Owens' "90 Hz");
    ``normalize`` peak-normalises each clip first (as every target in this project is); ``bank`` reuses
    a filterbank built for this clip length. S = :func:`cochleagram_length` (23 for 0.25 s).
    """
    audio = as_batch(audio)
    if normalize:
        audio = peak_normalize(audio)
    if not 0.0 < rate <= sample_rate:
        raise ValueError(f"cochleagram rate must be in (0, sample_rate], got {rate}")
    if not 0.0 < compression <= 1.0:
        raise ValueError(f"cochleagram compression must be in (0, 1], got {compression}")
    if bank is None:
        bank = erb_filterbank(audio.shape[-1], sample_rate, num_bands, fmin, fmax, device=audio.device)
    env = envelopes(audio, bank)  # (B, C, T)
    low = downsample_mean(env, sample_rate / rate)  # (B, C, S)
    return low.clamp_min(0.0).pow(compression).to(audio.dtype)  # (B, C, S)


def resynthesize(bands: Tensor, bank: ErbFilterbank) -> Tensor:
    """Sum of the subbands filtered once more by their own filter: (B, C, T) -> (B, T). Because the squared
    responses sum to one, ``resynthesize(subbands(x, bank), bank) == x`` (the bank's round trip)."""
    t = bands.shape[-1]
    spec = torch.fft.rfft(bands.to(bank.response.dtype), dim=-1) * bank.response.to(bands.device)[None]  # (B, C, K)
    return torch.fft.irfft(spec.sum(1), n=t, dim=-1)  # (B, T)
