"""Known test signals: well-separated damped sinusoids (eq. 4) computed directly in float64."""

from __future__ import annotations

import math

import numpy as np
import torch

SR = 44100
T = 11025  # 0.25 s
N_FFT = 2048
HOP = 256
BIN_HZ = SR / N_FFT


def eq4_numpy(freq, power_db, decay, sample_rate: float, num_samples: int) -> np.ndarray:
    """Eq. 4 summed over modes, float64, per clip: params (B, D) -> (B, T). The oracle for synthesis."""
    freq, power_db, decay = (np.asarray(a, dtype=np.float64) for a in (freq, power_db, decay))
    t = np.arange(num_samples, dtype=np.float64) / sample_rate
    out = np.zeros((freq.shape[0], num_samples))
    for b in range(freq.shape[0]):  # plain loops: this is the readable reference
        for i in range(freq.shape[1]):
            out[b] += 10.0 ** ((power_db[b, i] - decay[b, i] * t) / 20.0) * np.sin(2 * math.pi * freq[b, i] * t)
    return out


def random_modes(batch: int, num_modes: int, seed: int, decay_range=(300.0, 1500.0), power_range=(-20.0, 0.0),
                 fmin: float = 300.0, fmax: float = 15000.0, min_gap_bins: int = 8):
    """Random well-separated modes: frequencies at least ``min_gap_bins`` STFT bins apart, each at
    least 0.15 bin away from a bin edge (so "the bin holding the mode" is unambiguous).
    Returns float64 arrays (B, K) freq, power (dB), decay (dB/s)."""
    rng = np.random.default_rng(seed)
    freqs, powers, decays = [], [], []
    lo_bin, hi_bin = int(fmin / BIN_HZ), int(fmax / BIN_HZ)
    for _ in range(batch):
        slots = np.arange(lo_bin, hi_bin, min_gap_bins)
        bins = np.sort(rng.choice(slots, size=num_modes, replace=False))
        offset = rng.uniform(-0.35, 0.35, size=num_modes)  # within the bin, away from its edges
        freqs.append((bins + offset) * BIN_HZ)
        powers.append(rng.uniform(*power_range, size=num_modes))
        decays.append(rng.uniform(*decay_range, size=num_modes))
    return np.array(freqs), np.array(powers), np.array(decays)


def make_clips(freq, power, decay, snr_db: float | None = None, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    """Clips (B, T) of the given modes, optionally with white noise at ``snr_db`` (clip power ratio)."""
    audio = eq4_numpy(freq, power, decay, SR, T)
    if snr_db is not None:
        rng = np.random.default_rng(seed + 1000)
        noise = rng.standard_normal(audio.shape)
        sig_p = (audio**2).mean(axis=1, keepdims=True)
        noise *= np.sqrt(sig_p / 10 ** (snr_db / 10.0))
        audio = audio + noise
    return torch.from_numpy(audio).to(dtype)


def true_bins(freq: np.ndarray) -> np.ndarray:
    """The STFT bin holding each true mode. (B, K) int."""
    return np.rint(np.asarray(freq) / BIN_HZ).astype(int)


def world_clips(materials: tuple[str, ...], per_material: int, seed: int, sample_rate: int = SR,
                num_samples: int = T, noise_db: float = -60.0) -> np.ndarray:
    """Impact clips of the synthetic world's objects (float64, (B, T)): each strike's modes (eq. 4) plus
    its contact click, from t = 0, and white background noise ``noise_db`` below the clip's peak.

    ``("cloth", "carpet")`` gives the noise-like clips (dense, heavily damped soft-object modes and a
    dull click); ``("metal", "glass")`` tonal ones. Drawn with :mod:`physdiff.world.sound`, the world's own
    physics, so the estimators see the kinds of spectra the shards hold.
    """
    from physdiff.world.objects import kinds_of
    from physdiff.world.sound import contact_transient, sample_object, strike_modes, synth_modes

    rng = np.random.default_rng(seed)
    out = []
    for material in materials:
        for _ in range(per_material):
            kinds = kinds_of(material)  # the world's object kinds of that material (a cloth couch, a carpet floor...)
            obj = sample_object(kinds[int(rng.integers(len(kinds)))], rng)
            velocity = float(rng.uniform(0.8, 3.0))
            f, p, lam = strike_modes(obj, velocity, rng)
            modal = synth_modes(f, p, lam, sample_rate)
            click = contact_transient(obj, velocity, float(p.max()), sample_rate, rng)
            x = np.zeros(max(modal.size, click.size, num_samples))
            x[: modal.size] += modal
            x[: click.size] += click
            x = x[:num_samples]
            x += rng.standard_normal(num_samples) * np.abs(x).max() * 10 ** (noise_db / 20)
            out.append(x)
    return np.stack(out)
