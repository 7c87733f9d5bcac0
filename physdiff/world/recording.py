"""The soundtrack of one planned video: dry events, then the room and the background noise."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

from physdiff.world.config import WorldConfig
from physdiff.world.environment import background_noise, room_impulse_response
from physdiff.world.scene import VideoPlan
from physdiff.world.sound import contact_transient, scratch_sound, strike_modes, synth_modes

PEAK_TARGET = 0.5  # the recording is scaled down (never up) so its peak stays below this


@dataclass
class EventModes:
    """True modes of one event, in the final recording's scale (dB re full scale)."""

    freq: np.ndarray  # (M,) Hz
    power: np.ndarray  # (M,) dB
    decay: np.ndarray  # (M,) dB/s


def render_audio(plan: VideoPlan, world: WorldConfig, rng: np.random.Generator) -> tuple[np.ndarray, list[EventModes], float]:
    """(recording (T,) float32 at world.sample_rate, true modes per event, gain_db applied to everything)."""
    sr = world.sample_rate
    n = int(np.ceil(plan.duration * sr))
    dry = np.zeros(n)
    modes: list[EventModes] = []
    for e in plan.events:
        obj = plan.objects[e.obj].obj
        f, p, lam = strike_modes(obj, e.velocity, rng)
        if e.reaction == "non-rigid-motion":
            lam = lam * 1.5  # a deforming object loses its energy faster
        if e.action == "scratch":
            x = scratch_sound(f, p, lam, e.drag, e.velocity, sr, rng)
        else:
            x = synth_modes(f, p, lam, sr)
            click = contact_transient(obj, e.velocity, float(p.max()), sr, rng)
            x[: click.size] += click
            if e.reaction == "rigid-motion":  # the object hops and lands again: a weaker second impact
                delay = int(sr * rng.uniform(0.06, 0.15))
                f2, p2, lam2 = strike_modes(obj, e.velocity * 0.3, rng)
                y = synth_modes(f2, p2, lam2, sr)
                x = np.concatenate([x, np.zeros(max(0, delay + y.size - x.size))])
                x[delay:delay + y.size] += y
        start = int(round(e.time * sr))
        stop = min(n, start + x.size)
        dry[start:stop] += x[: stop - start]
        modes.append(EventModes(f, p, lam))
    if world.clean:
        wet = dry
    else:
        ir = room_impulse_response(plan.recording, sr, rng)
        wet = signal.oaconvolve(dry, ir)[:n]
        wet += background_noise(plan.recording, n, sr, rng)
    peak = float(np.abs(wet).max())
    gain = min(1.0, PEAK_TARGET / peak) if peak > 0 else 1.0
    gain_db = 20 * np.log10(gain)
    for m in modes:
        m.power = m.power + gain_db
    return (wet * gain).astype(np.float32), modes, float(gain_db)
