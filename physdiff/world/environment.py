"""The recording environment: room reverberation and background noise (what eq. 4 cannot explain).

Each site (:mod:`physdiff.world.sites`) is one place of a room type. The room type sets the
reverberation (RT60, direct-to-reverberant ratio, high-frequency absorption, early reflections) and the
kind of background noise (colour, mains hum, level); the site perturbs them once (two kitchens differ),
and each recording at the site perturbs them a little more (where the microphone stood). The residual parameters of the paper (eqs. 5-6: decaying
band-limited noise) exist to model exactly this, so modal resynthesis alone is measurably worse.
The room also sets the picture's background (``wall``/``floor`` colours), so it can be seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import signal


@dataclass(frozen=True)
class Room:
    name: str
    rt60: float  # s, late reverberation at low frequencies
    drr_db: float  # direct-to-reverberant energy ratio
    hf_rt60_factor: float  # RT60 above ~3 kHz relative to rt60 (air and soft furnishing absorb highs)
    noise_db: tuple[float, float]  # background level range, dB re the reference strike's strongest mode
    noise_slope: tuple[float, float]  # spectral slope range, dB/octave (0 white, -3 pink, -6 brown)
    hum_hz: float  # 0, 50 or 60: mains hum in the recording chain
    wall: tuple[int, int, int]  # background colour of the picture (RGB)
    floor: tuple[int, int, int]


ROOMS: dict[str, Room] = {
    r.name: r
    for r in (
        Room("kitchen", 0.55, 2.0, 0.7, (-58, -48), (-3.0, -1.0), 60.0, (225, 220, 205), (160, 120, 90)),
        Room("office", 0.4, 4.0, 0.6, (-60, -50), (-4.0, -2.0), 60.0, (200, 196, 180), (110, 110, 120)),
        Room("living-room", 0.4, 5.0, 0.45, (-62, -52), (-5.0, -3.0), 0.0, (170, 140, 110), (120, 80, 60)),
        Room("bedroom", 0.3, 6.0, 0.4, (-64, -54), (-5.0, -3.0), 0.0, (190, 170, 200), (130, 100, 90)),
        Room("bathroom", 0.7, 1.0, 0.8, (-60, -50), (-3.0, -1.0), 50.0, (215, 215, 228), (170, 168, 180)),
        Room("hallway", 0.8, 0.0, 0.6, (-58, -48), (-4.0, -2.0), 50.0, (190, 200, 205), (95, 90, 85)),
        Room("stairwell", 1.1, -2.0, 0.7, (-56, -46), (-3.0, -1.5), 0.0, (150, 150, 145), (115, 115, 110)),
        Room("garage", 0.9, 0.0, 0.75, (-55, -45), (-6.0, -4.0), 50.0, (120, 125, 130), (80, 80, 78)),
        Room("street", 0.1, 14.0, 0.9, (-50, -40), (-6.0, -4.5), 0.0, (150, 158, 175), (90, 90, 96)),
        Room("park", 0.06, 16.0, 0.9, (-54, -44), (-5.0, -3.5), 0.0, (125, 160, 205), (125, 112, 100)),
    )
}  # fmt: skip


@dataclass
class Recording:
    """One recording's environment, drawn from its room (all levels in dB re full scale)."""

    room: Room
    rt60: float
    drr_db: float
    noise_db: float
    noise_slope: float
    hum_db: float

    def summary(self) -> dict[str, Any]:
        return {"room": self.room.name, "rt60_s": round(self.rt60, 4), "drr_db": round(self.drr_db, 2),
                "noise_db": round(self.noise_db, 2), "noise_slope_db_per_octave": round(self.noise_slope, 2),
                "hum_hz": self.room.hum_hz, "hum_db": round(self.hum_db, 2)}


def site_acoustics(room: Room, rng: np.random.Generator, reference_db: float = -18.0) -> Recording:
    """The acoustics of one place (a site): its room type, perturbed once. Noise levels are re ``reference_db``.

    Two kitchens differ (size, furnishing, the fridge's hum); every recording at one site shares them.
    """
    rt60 = room.rt60 * float(np.exp(rng.normal(0.0, 0.2)))
    drr = room.drr_db + float(rng.normal(0.0, 2.0))
    noise = reference_db + float(rng.uniform(*room.noise_db))
    slope = float(rng.uniform(*room.noise_slope))
    hum = noise + float(rng.uniform(-6.0, 4.0)) if room.hum_hz else -200.0
    return Recording(room, rt60, drr, noise, slope, hum)


def recording_at(site: Recording, rng: np.random.Generator) -> Recording:
    """One recording at a site: the microphone stands a little elsewhere and the background moves a few dB."""
    hum = site.hum_db + float(rng.uniform(-1.5, 1.5)) if site.room.hum_hz else site.hum_db
    return Recording(site.room, site.rt60 * float(np.exp(rng.normal(0.0, 0.06))),
                     site.drr_db + float(rng.normal(0.0, 1.0)), site.noise_db + float(rng.uniform(-2.0, 2.0)),
                     site.noise_slope + float(rng.normal(0.0, 0.2)), hum)


def room_impulse_response(rec: Recording, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Direct sound + early reflections + an exponentially decaying noise tail, (T,), h[0] = 1.

    The tail is split at ~3 kHz into two bands with their own decay (highs die faster), and scaled to
    the recording's direct-to-reverberant ratio.
    """
    n = int(sample_rate * min(3.0, 1.2 * rec.rt60 + 0.05))
    t = np.arange(n) / sample_rate
    h = np.zeros(n)
    h[0] = 1.0
    for _ in range(6):  # early reflections (walls, table) 2-25 ms
        k = int(sample_rate * rng.uniform(0.002, 0.025))
        h[k] += rng.uniform(-0.5, 0.5) * 10 ** (-rec.drr_db / 40)
    pre = int(0.004 * sample_rate)  # the diffuse tail builds up after the first reflections
    noise = rng.standard_normal(n)
    b, a = signal.butter(2, 3000.0 / (sample_rate / 2))
    low = signal.lfilter(b, a, noise)
    high = noise - low
    tau_lo = rec.rt60 / np.log(1000.0)  # amplitude e-folding time: 60 dB over RT60
    tau_hi = rec.rt60 * rec.room.hf_rt60_factor / np.log(1000.0)
    tail = low * np.exp(-t / tau_lo) + high * np.exp(-t / tau_hi)
    tail[:pre] *= np.linspace(0.0, 1.0, pre)
    energy = float(np.sum(tail**2))
    tail *= np.sqrt(10 ** (-rec.drr_db / 10) / max(energy, 1e-20))
    return h + tail


def background_noise(rec: Recording, n: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Coloured noise (slope dB/octave) at the recording's level, slowly fluctuating, plus mains hum; (n,)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / sample_rate)
    shape = (np.maximum(f, 20.0) / 1000.0) ** (rec.noise_slope / (20 * np.log10(2)))
    shape[f > 0.45 * sample_rate] = 0.0
    noise = np.fft.irfft(spec * shape, n)
    noise *= 10 ** (rec.noise_db / 20) / (np.std(noise) + 1e-20)
    # slow level fluctuation (traffic, ventilation): +-2 dB over seconds
    k = max(2, n // sample_rate + 2)
    knots = rng.normal(0.0, 1.0, k)
    drift = np.interp(np.linspace(0, k - 1, n), np.arange(k), knots)
    noise *= 10 ** (drift * 2.0 / 20)
    if rec.room.hum_hz:
        t = np.arange(n) / sample_rate
        phases = rng.uniform(0, 2 * np.pi, 4)
        hum = sum(np.sin(2 * np.pi * rec.room.hum_hz * (h + 1) * t + phases[h]) / (h + 1) for h in range(4))
        noise += 10 ** (rec.hum_db / 20) * hum
    return noise
