"""A per-bin transcription of the official code's estimator: the oracle of ``estimate_modes(method="official")``.

Transcribed from ``extract_params`` in ``tools/extract_physics_params.py`` of the official repository
(sukun1045/video-physics-sound-diffusion), as plain loops in numpy float64, sharing no code with
``physdiff.physics``. For every STFT bin it walks *all* whole-clip FFT points, as the official loop does,
with a running maximum that starts at 0 dB and a strict ``>``:

    fft_freqs = linspace(0, sr / 2, len(rfft(x)));  Mag_X = 20 log10 |rfft(x)|
    for each bin k (centre c_k = linspace(0, sr / 2, n_fft / 2 + 1)[k]):
        pick = c_k; large = 0
        for i: if |fft_freqs[i] - c_k| <= 10.76 and Mag_X[i] > large: large = Mag_X[i]; pick = fft_freqs[i]

p is the bin's first-frame value of ``amplitude_to_db(|STFT|, ref=max)``; the time to floor is the first
frame whose dB value is -80 (0.5 frame if frame 0, the frame count if never). The STFT and dB spectrogram
are the per-bin reference's transcriptions of librosa (``reference_estimator.py``: centred frames, zero
padding, periodic Hann, amin 1e-5, top_db 80). By default the inner loop runs the Python comparison only
on the points inside the window (the official membership test is evaluated for all 5,513 points,
vectorised, to find them, in ascending order), which takes a fraction of a second per clip;
``literal=True`` is the official double loop itself, and a test checks that both agree exactly.
"""

from __future__ import annotations

import numpy as np

from tests.physics.reference_estimator import reference_db, reference_stft_magnitude

OFFICIAL_WINDOW_HZ = 10.76


def official_reference(
    audio: np.ndarray,
    sample_rate: float = 44100,
    n_fft: int = 2048,
    hop: int = 256,
    floor_db: float = -80.0,
    window_hz: float = OFFICIAL_WINDOW_HZ,
    literal: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One clip (T,) -> (freq Hz, power dB, time to floor in seconds), each (F,).

    ``literal=True`` runs the official double loop over every FFT point for every bin (5.6 M Python steps
    per 0.25 s clip, seconds per clip); the default finds each window's points with the same test, vectorised.
    """
    x = np.asarray(audio, dtype=np.float64)
    peak = np.abs(x).max()
    if peak > 0:
        x = x / peak  # the official caller peak-normalises before extract_params
    db = reference_db(reference_stft_magnitude(x, n_fft, hop), floor_db)  # (F, N)
    n_bins, n_frames = db.shape
    X = np.fft.rfft(x)
    fft_freqs = np.linspace(0, sample_rate / 2, num=len(X))
    with np.errstate(divide="ignore"):
        mag_x = 20 * np.log10(np.abs(X))
    freq_bins = np.linspace(0, sample_rate / 2, n_bins)
    freq = official_pick_reference(mag_x, fft_freqs, freq_bins, window_hz, literal)
    power, tau = np.empty(n_bins), np.empty(n_bins)
    for k in range(n_bins):
        power[k] = db[k, 0]
        hits = np.nonzero(db[k] == floor_db)[0]
        frame = float(n_frames) if len(hits) == 0 else float(hits[0])
        if frame == 0:
            frame = 0.5
        tau[k] = frame * hop / sample_rate
    return freq, power, tau


def official_pick_reference(mag_x: np.ndarray, fft_freqs: np.ndarray, freq_bins: np.ndarray, window_hz: float,
                            literal: bool = False) -> np.ndarray:
    """The official selection loop: dB values ``mag_x (K,)`` on ``fft_freqs (K,)`` -> f per bin ``(F,)``."""
    freq = np.empty(len(freq_bins))
    for k, freq_peak in enumerate(freq_bins):
        pick_freq = freq_peak
        large = 0
        if literal:
            for i, fft_freq in enumerate(fft_freqs):
                if abs(fft_freq - freq_peak) <= window_hz and mag_x[i] > large:
                    large = mag_x[i]
                    pick_freq = fft_freq
        else:
            for i in np.nonzero(np.abs(fft_freqs - freq_peak) <= window_hz)[0]:  # ascending i, as the official loop
                if mag_x[i] > large:
                    large = mag_x[i]
                    pick_freq = fft_freqs[i]
        freq[k] = pick_freq
    return freq


def official_reference_batch(audio: np.ndarray, sample_rate: float = 44100, **kw) -> tuple[np.ndarray, ...]:
    """(B, T) -> three (B, F) arrays: freq, power, time to floor (s)."""
    rows = [official_reference(a, sample_rate, **kw) for a in np.atleast_2d(audio)]
    return tuple(np.stack([r[i] for r in rows]) for i in range(3))
