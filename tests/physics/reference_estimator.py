"""A straightforward per-bin reference of the paper's rule: the oracle the vectorised version must equal.

Written as the official code reads (numpy, float64, explicit loops over frames and bins), with its
own STFT, so it shares no code with ``physdiff.physics``. Conventions follow
``physdiff/physics/paper_rule.py``'s docstring (zero-padded centred frames, periodic Hann,
amplitude_to_db(ref=max, amin=1e-5) floored at ``floor_db``, half-bin windows over the whole-clip FFT,
time to floor with the 0.5-frame / N-frame conventions).
"""

from __future__ import annotations

import math

import numpy as np


def reference_stft_magnitude(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """|STFT| of one clip (T,) -> (F, N): centred frames, zero padding, periodic Hann."""
    pad = n_fft // 2
    xp = np.concatenate([np.zeros(pad), x, np.zeros(pad + n_fft)])
    n_frames = len(x) // hop + 1
    window = 0.5 - 0.5 * np.cos(2 * math.pi * np.arange(n_fft) / n_fft)
    out = np.empty((n_fft // 2 + 1, n_frames))
    for n in range(n_frames):
        out[:, n] = np.abs(np.fft.rfft(xp[n * hop : n * hop + n_fft] * window))
    return out


def reference_db(mag: np.ndarray, floor_db: float) -> np.ndarray:
    ref = mag.max()
    if ref <= 0:
        return np.full_like(mag, floor_db)
    db = 20 * np.log10(np.maximum(mag, 1e-5)) - 20 * np.log10(max(ref, 1e-5))
    return np.maximum(db, floor_db)


def reference_paper_rule(
    audio: np.ndarray,
    sample_rate: float,
    n_fft: int = 2048,
    hop: int = 256,
    floor_db: float = -80.0,
    decay_convention: str = "fit",
    fft_pad: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One clip (T,) -> (freq, power, decay), each (F,), by loops over bins."""
    x = np.asarray(audio, dtype=np.float64)
    peak = np.abs(x).max()
    if peak > 0:
        x = x / peak
    db = reference_db(reference_stft_magnitude(x, n_fft, hop), floor_db)
    n_bins, n_frames = db.shape
    L = max(len(x) * fft_pad, n_fft)
    spectrum = np.abs(np.fft.rfft(x, n=L))
    fft_freqs = np.arange(len(spectrum)) * sample_rate / L
    half = sample_rate / (2 * n_fft)
    freq, power, decay = np.empty(n_bins), np.empty(n_bins), np.empty(n_bins)
    for k in range(n_bins):
        center = k * sample_rate / n_fft
        in_window = np.nonzero(np.abs(fft_freqs - center) <= half + 1e-9 * (sample_rate / L))[0]
        best = in_window[np.argmax(spectrum[in_window])]
        freq[k] = fft_freqs[best] if spectrum[best] > 0 else center
        power[k] = db[k, 0]
        hits = np.nonzero(db[k] <= floor_db)[0]
        if len(hits) == 0:
            frames = float(n_frames)
        elif hits[0] == 0:
            frames = 0.5
        else:
            frames = float(hits[0])
        tau = frames * hop / sample_rate
        if decay_convention == "fit":
            decay[k] = max(power[k] - floor_db, 0.0) / tau
        else:
            decay[k] = 60.0 / tau
    return freq, power, decay


def reference_paper_rule_batch(audio: np.ndarray, sample_rate: float, **kw) -> tuple[np.ndarray, ...]:
    """(B, T) -> three (B, F) arrays."""
    rows = [reference_paper_rule(a, sample_rate, **kw) for a in np.atleast_2d(audio)]
    return tuple(np.stack([r[i] for r in rows]) for i in range(3))
