"""Ground-truth impact sounds: objects, their modes per strike, and the waveform of an event.

This is the synthetic world's own physics, independent of the estimator in ``physdiff.physics``:
an event is the sum of exponentially decaying sinusoids (the form of the paper's eq. 4,
q_i(t) = 10^((p_i - lambda_i t) / 20) sin(2 pi f_i t)) plus what eq. 4 leaves out: a short contact
transient whose brightness follows hardness, and for scratches a friction force driving the modes.
The environment (room, noise) is added per recording in :mod:`physdiff.world.environment`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import signal

from physdiff.world.materials import F_MAX, F_MIN, MATERIALS, SIZE_REF, V_REF, MaterialSpec, family_ratios
from physdiff.world.objects import ObjectKind

FLOOR_BELOW_PEAK_DB = 100.0  # a mode is synthesised until it is this far below the event's peak


@dataclass
class WorldObject:
    """One struck object: its material, family, size and the strike-independent part of its modes."""

    material: str
    family: str
    size_m: float
    f1: float
    freq: np.ndarray  # (M,) Hz
    decay: np.ndarray  # (M,) dB/s at V_REF
    shape_db: np.ndarray  # (M,) dB, mode-to-mode onset-power scatter (radiation, mode shape)
    contact_ms: float  # Hertzian contact at V_REF

    @property
    def spec(self) -> MaterialSpec:
        return MATERIALS[self.material]

    def summary(self) -> dict[str, Any]:
        return {"material": self.material, "family": self.family, "size_m": round(self.size_m, 4),
                "f1_hz": round(self.f1, 2), "num_modes": int(self.freq.size),
                "contact_ms_at_vref": round(self.contact_ms, 4)}


def sample_object(kind: ObjectKind, rng: np.random.Generator) -> WorldObject:
    """Draw one object of a kind (:mod:`physdiff.world.objects`: a railing is a metal bar of 0.6-1.2 m):
    its size within the kind's range, then fundamental, modes and damping from its material
    (:mod:`physdiff.world.materials`)."""
    material, family, (lo, hi) = kind.material, kind.family, kind.size_m
    spec = MATERIALS[material]
    size = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    f1 = spec.f1_median * (SIZE_REF / size) ** spec.size_exponent * np.exp(rng.normal(0.0, spec.f1_log_sd))
    f1 = float(np.clip(f1, F_MIN * 1.5, 6000.0))
    n = int(rng.integers(spec.n_modes[0], spec.n_modes[1] + 1))
    freq = f1 * family_ratios(family, n if family in ("soft", "block") else 4 * n, rng)
    freq = freq[(freq >= F_MIN) & (freq <= F_MAX)][:n]  # (M,)
    # Rayleigh damping around the object's centre frequency, with the object's RT60 (dB/s = 60 / RT60).
    rt60 = spec.rt60_median * np.exp(rng.normal(0.0, spec.rt60_log_sd))
    fc = float(np.exp(np.mean(np.log(freq))))
    x = freq / fc
    decay = (60.0 / rt60) * ((1 - spec.rayleigh_rho) + spec.rayleigh_rho * x**2) * x ** (-spec.kappa)
    decay = decay * np.exp(rng.normal(0.0, 0.15, freq.size))  # mode-to-mode loss scatter
    decay = np.clip(decay, 20.0, 8000.0)  # (M,) dB/s
    shape = 20 * np.log10(rng.uniform(0.12, 1.0, freq.size)) + rng.normal(0.0, spec.shape_sd, freq.size)
    contact = spec.contact_ms * float(np.exp(rng.normal(0.0, 0.2)))
    return WorldObject(material, family, size, f1, freq, decay, shape, contact)


def contact_duration_ms(obj: WorldObject, velocity: float) -> float:
    """Hertzian impact: the contact time falls as v^(-1/5), so faster strikes are brighter."""
    return obj.contact_ms * (velocity / V_REF) ** (-0.2)


def contact_spectrum_db(freq: np.ndarray, contact_ms: float) -> np.ndarray:
    """Level (dB) of a half-sine contact force of duration tau at f: flat, then -12 dB/octave above ~1/(2 tau)."""
    x = 2.0 * freq * contact_ms * 1e-3
    return -10.0 * np.log10(1.0 + x**4)


def strike_modes(obj: WorldObject, velocity: float, rng: np.random.Generator,
                 gain_db: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True modes (f Hz, p dB re full scale, lambda dB/s) of one strike; each (M,), sorted by frequency.

    p = level + 20 log10(v / v_ref) + contact spectrum + shape (re-drawn a little: the strike point moves).
    """
    spec = obj.spec
    tau = contact_duration_ms(obj, velocity)
    shape = obj.shape_db + rng.normal(0.0, 2.0, obj.freq.size)
    rel = contact_spectrum_db(obj.freq, tau) + shape
    power = spec.level_db + 20 * np.log10(velocity / V_REF) + (rel - rel.max()) + gain_db
    # Harder hits excite slightly stronger damping (more energy radiated early) - a weak, real effect.
    decay = obj.decay * (velocity / V_REF) ** 0.05
    return obj.freq.copy(), power, decay


def synth_modes(freq: np.ndarray, power_db: np.ndarray, decay_db_s: np.ndarray, sample_rate: int,
                floor_db: float | None = None) -> np.ndarray:
    """Eq. 4 summed over modes: sum_i 10^((p_i - lambda_i t)/20) sin(2 pi f_i t); returns (T,) float64.

    Each mode is synthesised only until it falls ``FLOOR_BELOW_PEAK_DB`` below the strongest onset
    (its own length, so long-ringing metal does not make every mode cost a second of samples).
    """
    floor = (power_db.max() - FLOOR_BELOW_PEAK_DB) if floor_db is None else floor_db
    dur = np.clip((power_db - floor) / decay_db_s, 0.0, 4.0)  # (M,) s
    n_total = int(np.ceil(dur.max() * sample_rate)) + 1
    out = np.zeros(n_total)
    for f, p, lam, d in zip(freq, power_db, decay_db_s, dur):
        n = int(np.ceil(d * sample_rate))
        if n <= 1:
            continue
        t = np.arange(n) / sample_rate
        out[:n] += 10.0 ** ((p - lam * t) / 20.0) * np.sin(2 * np.pi * f * t)
    return out


def contact_transient(obj: WorldObject, velocity: float, peak_db: float, sample_rate: int,
                      rng: np.random.Generator) -> np.ndarray:
    """The click of the contact itself: a noise burst a few ms long, low-passed at ~1/(2 tau).

    Hard materials (short tau) give a bright tick, soft ones a dull thud. It is broadband and not
    modal, so it is part of what the residual (not eq. 4) must explain.
    """
    tau = contact_duration_ms(obj, velocity) * 1e-3
    n = int(sample_rate * max(0.004, 6 * tau))
    t = np.arange(n) / sample_rate
    burst = rng.standard_normal(n) * np.exp(-t / max(tau * 1.5, 4e-4))
    fc = min(0.45 * sample_rate, max(300.0, 0.5 / tau))
    b, a = signal.butter(2, fc / (sample_rate / 2))
    burst = signal.lfilter(b, a, burst)
    burst *= 10 ** ((peak_db - 14.0) / 20.0) / (np.abs(burst).max() + 1e-12)
    return burst


def scratch_force(duration: float, velocity: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Friction of a dragged stick: stick-slip pulses (rate ~ speed) on broadband rubbing noise, (T,)."""
    n = int(duration * sample_rate)
    t = np.arange(n) / sample_rate
    rate = 60.0 + 120.0 * velocity  # stick-slip events per second
    pulses = (rng.random(n) < rate / sample_rate) * rng.uniform(0.5, 1.5, n)
    noise = 0.15 * rng.standard_normal(n)
    env = np.sin(np.pi * np.clip(t / duration, 0, 1)) ** 0.5
    return (pulses + noise) * env


def scratch_sound(freq: np.ndarray, power_db: np.ndarray, decay_db_s: np.ndarray, duration: float,
                  velocity: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A scratch: friction force convolved with the object's modal impulse response (eq. 4 modes)."""
    ir = synth_modes(freq, power_db, decay_db_s, sample_rate)
    force = scratch_force(duration, velocity, sample_rate, rng)
    out = signal.fftconvolve(force, ir)
    # Level: a scratch is quieter than a strike of the same object.
    return out * (10 ** (-10 / 20) / (np.abs(out).max() + 1e-12)) * 10 ** (power_db.max() / 20)
