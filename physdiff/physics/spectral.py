"""Spectrogram helpers shared by every stage: STFT magnitude, dB and log-magnitude spectrograms,
the [-1, 1] normalisation of the diffusion input, and Griffin-Lim back to audio.

Conventions (fixed once here, used everywhere):
- periodic Hann window of length ``n_fft``, centred frames (frame n is centred on sample n * hop),
  **zero** padding at the clip edges (librosa >= 0.10's ``pad_mode="constant"``; works for any clip
  length, and an impact that starts at t = 0 is not mirrored into negative time);
- ``F = n_fft // 2 + 1`` bins, ``N = T // hop + 1`` frames; at the paper's settings a 0.25 s clip at
  44.1 kHz is 1025 x 44.
- All functions take ``(B, T)`` or ``(T,)`` audio, follow the input's device and dtype, and are
  differentiable where that makes sense.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # pragma: no cover
    from physdiff.config import AudioConfig

__all__ = [
    "STFT_PAD_MODE",
    "AMIN",
    "as_batch",
    "peak_normalize",
    "stft_complex",
    "stft_magnitude",
    "db_spectrogram",
    "log_magnitude",
    "normalize_spectrogram",
    "denormalize_spectrogram",
    "griffin_lim",
    "fast_griffin_lim",
    "spectrogram_target",
    "spectrogram_to_audio",
    "bin_centers",
    "frame_times",
    "LN10_OVER_20",
]

STFT_PAD_MODE = "constant"
AMIN = 1e-5  # librosa.amplitude_to_db's amin: magnitudes below it count as AMIN


def as_batch(audio: torch.Tensor, name: str = "audio") -> torch.Tensor:
    """``(T,)`` -> ``(1, T)``; ``(B, T)`` unchanged; anything else is a ValueError naming the shape."""
    if not isinstance(audio, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(audio).__name__}")
    if audio.dim() == 1:
        audio = audio.unsqueeze(0)
    if audio.dim() != 2:
        raise ValueError(f"{name} must have shape (B, T) or (T,), got {tuple(audio.shape)}")
    if audio.shape[-1] < 1:
        raise ValueError(f"{name} has no samples (shape {tuple(audio.shape)})")
    if not audio.is_floating_point():
        audio = audio.float()
    return audio


def peak_normalize(audio: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Divide each clip by its peak absolute value (the official code's first step).

    Silent (all-zero) clips stay all-zero instead of becoming NaN. ``(B, T)`` -> ``(B, T)``.
    """
    audio = as_batch(audio)
    peak = audio.abs().amax(dim=-1, keepdim=True)  # (B, 1)
    # Silent clips: divide by 1 so they stay zero (no 0/0).
    return audio / torch.where(peak > eps, peak, torch.ones_like(peak))  # (B, T)


def _window(n_fft: int, like: torch.Tensor) -> torch.Tensor:
    return torch.hann_window(n_fft, periodic=True, device=like.device, dtype=like.dtype)


def stft_complex(audio: torch.Tensor, n_fft: int, hop_length: int) -> torch.Tensor:
    """Complex STFT, centred frames, periodic Hann, zero edge padding. ``(B, T)`` -> ``(B, F, N)``."""
    audio = as_batch(audio)
    return torch.stft(
        audio,
        n_fft=n_fft,
        hop_length=hop_length,
        window=_window(n_fft, audio),
        center=True,
        pad_mode=STFT_PAD_MODE,
        return_complex=True,
    )  # (B, F, N)


def stft_magnitude(audio: torch.Tensor, n_fft: int, hop_length: int) -> torch.Tensor:
    """|STFT| with the conventions of this module. ``(B, T)`` -> ``(B, F, N)``."""
    return stft_complex(audio, n_fft, hop_length).abs()  # (B, F, N)


def _db_from_magnitude(mag: torch.Tensor, floor_db: float) -> torch.Tensor:
    """librosa ``amplitude_to_db(mag, ref=np.max, top_db=-floor_db)`` per clip; silent clips -> floor.

    librosa maps an all-zero clip to 0 dB everywhere (ref = amin); we define it as the floor
    everywhere, so a silent clip reads as "nothing above the floor", which is what it is.
    """
    ref = mag.amax(dim=(-2, -1), keepdim=True)  # (B, 1, 1)
    db = 20.0 * torch.log10(mag.clamp_min(AMIN)) - 20.0 * torch.log10(ref.clamp_min(AMIN))  # (B, F, N)
    db = db.clamp_min(floor_db)
    silent = ref <= 0  # (B, 1, 1)
    return torch.where(silent, torch.full_like(db, floor_db), db)  # (B, F, N)


def db_spectrogram(audio: torch.Tensor, n_fft: int, hop_length: int, floor_db: float = -80.0) -> torch.Tensor:
    """Peak-normalised dB spectrogram floored at ``floor_db`` (librosa amplitude_to_db(ref=max)).

    The maximum cell of each clip is 0 dB; nothing is below ``floor_db``; an all-zero clip is
    ``floor_db`` everywhere. ``(B, T)`` -> ``(B, F, N)``.
    """
    if floor_db >= 0:
        raise ValueError(f"floor_db must be negative, got {floor_db}")
    mag = stft_magnitude(peak_normalize(audio), n_fft, hop_length)  # (B, F, N)
    return _db_from_magnitude(mag, floor_db)


def log_magnitude(audio: torch.Tensor, cfg: "AudioConfig", normalize: bool = True) -> torch.Tensor:
    """The diffusion model's input: ``log(|STFT| + cfg.spec_log_eps)`` of the peak-normalised clip.

    ``normalize=False`` skips the peak normalisation (only for audio already normalised).
    ``(B, T)`` -> ``(B, F, N)``; 1025 x 44 for a 0.25 s clip at the paper's settings.
    """
    audio = as_batch(audio)
    if normalize:
        audio = peak_normalize(audio)
    mag = stft_magnitude(audio, cfg.n_fft, cfg.hop_length)  # (B, F, N)
    return torch.log(mag + cfg.spec_log_eps)


def normalize_spectrogram(logmag: torch.Tensor, cfg: "AudioConfig", clamp: bool = False) -> torch.Tensor:
    """Map a log-magnitude spectrogram linearly to about [-1, 1] with the fixed constants, not clamped (official).

    ``[spec_min, spec_max]`` -> ``[-1, 1]``. ``spec_min = ln(1e-8)`` is the floor of ``log(|X| + 1e-8)``, so
    nothing falls below -1 (but for float32 rounding). Above, a peak-normalised clip reaches at most
    ``ln(n_fft / 2)`` (the Hann window's sum; a full-scale sinusoid in one bin gives ``ln(n_fft / 4)``): 1.08
    (sinusoid: 1.02) at n_fft 2048, while at n_fft <= 512 (tiny) every value stays below ``spec_max`` (at most
    0.97), so there the result is the same with or without clamping. ``clamp=True`` clips to [-1, 1]
    (physdiff before the paper fix, docs/deviations.md).
    """
    lo, hi = cfg.spec_min, cfg.spec_max
    x = 2.0 * (logmag - lo) / (hi - lo) - 1.0
    return x.clamp(-1.0, 1.0) if clamp else x


def denormalize_spectrogram(x: torch.Tensor, cfg: "AudioConfig") -> torch.Tensor:
    """Inverse of :func:`normalize_spectrogram` (exact for unclamped values)."""
    lo, hi = cfg.spec_min, cfg.spec_max
    return (x + 1.0) * 0.5 * (hi - lo) + lo


def griffin_lim(
    logmag: torch.Tensor, cfg: "AudioConfig", length: int | None = None, seed: int | None = 0,
    init_phase: torch.Tensor | None = None, n_iter: int | None = None,
) -> torch.Tensor:
    """Log-magnitude spectrogram ``(B, F, N)`` (or ``(F, N)``) -> audio ``(B, T)`` by Griffin-Lim.

    Uses ``torchaudio.transforms.GriffinLim`` (fast Griffin-Lim, momentum 0.99) with
    ``cfg.griffin_lim_iters`` iterations (or ``n_iter``) on ``exp(logmag) - spec_log_eps``. ``length=None``
    gives ``cfg.num_samples`` when the spectrogram has ``cfg.num_frames`` frames, else ``(N - 1) * hop``.
    The random initial phase is drawn under ``seed`` (``None``: the global RNG), so results are
    reproducible by default; ``init_phase`` ((B, F, N) unit phasors, e.g. :func:`physdiff.physics.phase.modal_phase`)
    starts the same iteration from a given phase instead.
    """
    import torchaudio

    if logmag.dim() == 2:
        logmag = logmag.unsqueeze(0)
    if logmag.dim() != 3 or logmag.shape[-2] != cfg.n_fft // 2 + 1:
        raise ValueError(f"griffin_lim expects (B, {cfg.n_fft // 2 + 1}, N), got {tuple(logmag.shape)}")
    frames = logmag.shape[-1]
    if length is None:
        length = cfg.num_samples if frames == cfg.num_frames else (frames - 1) * cfg.hop_length
    mag = (logmag.exp() - cfg.spec_log_eps).clamp_min(0.0)  # (B, F, N)
    iters = cfg.griffin_lim_iters if n_iter is None else n_iter
    if init_phase is not None:
        if init_phase.shape != mag.shape:
            raise ValueError(f"init_phase must have the spectrogram's shape {tuple(mag.shape)}, got {tuple(init_phase.shape)}")
        return fast_griffin_lim(mag, init_phase.to(mag.device), cfg.n_fft, cfg.hop_length, iters, length)  # (B, T)
    transform = torchaudio.transforms.GriffinLim(
        n_fft=cfg.n_fft,
        n_iter=iters,
        hop_length=cfg.hop_length,
        power=1.0,
        length=length,
    ).to(device=mag.device, dtype=mag.dtype)
    if seed is None:
        return transform(mag)  # (B, T)
    devices = [mag.device] if mag.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return transform(mag)  # (B, T)


def fast_griffin_lim(mag: torch.Tensor, angles: torch.Tensor, n_fft: int, hop_length: int, n_iter: int,
                     length: int, momentum: float = 0.99) -> torch.Tensor:
    """Fast Griffin-Lim (Perraudin et al. 2013) from the initial phasors ``angles``: (B, F, N) -> (B, T).

    The same iteration as ``torchaudio.functional.griffinlim`` (Hann window, centred reflect-padded frames,
    momentum 0.99), with the start given instead of drawn; ``tests/physics/test_phase.py`` checks the two
    agree when given the same start.
    """
    window = torch.hann_window(n_fft, device=mag.device, dtype=mag.dtype)
    m = momentum / (1 + momentum)
    angles = angles.to(torch.complex128 if mag.dtype == torch.float64 else torch.complex64)
    tprev = torch.tensor(0.0, dtype=mag.dtype, device=mag.device)
    for _ in range(n_iter):
        inverse = torch.istft(mag * angles, n_fft=n_fft, hop_length=hop_length, window=window, length=length)
        rebuilt = torch.stft(inverse, n_fft=n_fft, hop_length=hop_length, window=window, center=True,
                             pad_mode="reflect", normalized=False, onesided=True, return_complex=True)
        angles = rebuilt - tprev.mul_(m) if m else rebuilt
        angles = angles.div(angles.abs().add(1e-16))
        tprev = rebuilt
    return torch.istft(mag * angles, n_fft=n_fft, hop_length=hop_length, window=window, length=length)  # (B, T)


def spectrogram_target(audio: torch.Tensor, cfg: "AudioConfig") -> torch.Tensor:
    """x_0 of the diffusion model: the normalised log-magnitude spectrogram of the peak-normalised clip.

    ``(B, T)`` -> ``(B, 1, F, N)`` in about [-1, 1] (not clamped, as the official code: up to ~1.08 at
    n_fft 2048, see :func:`normalize_spectrogram`). The STFT and the log stay in float32 under bf16 autocast.
    """
    with torch.autocast(audio.device.type, enabled=False):
        return normalize_spectrogram(log_magnitude(audio.float(), cfg), cfg).unsqueeze(1)


def spectrogram_to_audio(x: torch.Tensor, cfg: "AudioConfig", seed: int | None = 0,
                         init_phase: torch.Tensor | None = None, n_iter: int | None = None) -> torch.Tensor:
    """Inverse of :func:`spectrogram_target`: ``(B, 1, F, N)`` -> denormalise -> Griffin-Lim -> peak-normalised ``(B, T)``.

    ``init_phase``: Griffin-Lim's start ((B, F, N) unit phasors; default random under ``seed``).
    """
    logmag = denormalize_spectrogram(x.float().squeeze(1).cpu(), cfg)  # (B, F, N)
    phase = None if init_phase is None else init_phase.cpu()
    return peak_normalize(griffin_lim(logmag, cfg, seed=seed, init_phase=phase, n_iter=n_iter))  # (B, T)


def bin_centers(n_fft: int, sample_rate: float, like: torch.Tensor | None = None) -> torch.Tensor:
    """Centre frequency (Hz) of each STFT bin. ``(F,)``."""
    kw = {} if like is None else {"device": like.device, "dtype": like.dtype}
    return torch.arange(n_fft // 2 + 1, **kw) * (sample_rate / n_fft)


def frame_times(num_frames: int, hop_length: int, sample_rate: float, like: torch.Tensor | None = None) -> torch.Tensor:
    """Centre time (s) of each centred frame. ``(N,)``."""
    kw = {} if like is None else {"device": like.device, "dtype": like.dtype}
    return torch.arange(num_frames, **kw) * (hop_length / sample_rate)


# ln(10) / 20: a level in dB times this is a natural-log amplitude (eq. 4: 10^(x/20) = e^(x * LN10_OVER_20)).
LN10_OVER_20 = math.log(10.0) / 20.0
