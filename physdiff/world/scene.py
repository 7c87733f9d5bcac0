"""The plan of one recording: its room, the objects the camera visits, and the annotated events.

Everything random about a video is drawn here (from the video's own generator), before any pixel or
sample is made, so pictures and sound share one ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from physdiff.data.labels import PAPER_MATERIALS, UNKNOWN
from physdiff.world.config import WorldConfig
from physdiff.world.environment import Recording, sample_recording
from physdiff.world.materials import MATERIALS, V_REF
from physdiff.world.sound import WorldObject, sample_object

SOFT = ("cloth", "carpet", "paper")  # these deform (non-rigid motion) rather than slide


@dataclass
class SceneObject:
    """A struck object and where it sits in the picture (fractions of the frame)."""

    obj: WorldObject
    frac: float  # visual extent: grows with the physical size (log scale)
    aspect: float  # width / height of its footprint
    shape: str  # "rect" or "ellipse"
    centre: tuple[float, float]  # (x, y) in frame fractions
    texture_seed: int


@dataclass
class Event:
    """One annotated event and the stick's motion around it."""

    time: float  # contact time (s), aligned to an audio sample
    obj: int  # index into VideoPlan.objects
    label: str  # annotated material (the true one, or "None")
    action: str  # "hit" or "scratch"
    reaction: str  # "static", "rigid-motion" or "non-rigid-motion"
    velocity: float  # m/s at contact
    drag: float  # s the stick stays on the surface (scratches), 0 for hits
    contact: tuple[float, float]  # (x, y) frame fractions where the tip touches
    stick_angle: float  # rad, stick elevation at contact (seen from the pivot, above the frame's right)
    lift_angle: float  # rad the stick is raised between strikes
    approach_s: float  # swing-down time: shorter for faster strikes
    rebound_s: float  # lift-off time: longer for soft, low-restitution surfaces
    move: tuple[float, float] = (0.0, 0.0)  # displacement (frame fractions) of a moving object


@dataclass
class VideoPlan:
    recording: Recording
    objects: list[SceneObject]
    events: list[Event]
    duration: float  # s
    sensor_noise: float  # std of the sensor noise, in 8-bit levels
    background_seed: int
    extra: dict = field(default_factory=dict)


def _object_frac(size_m: float) -> float:
    """Visual extent of an object (fraction of the frame) from its physical size: log-linear."""
    return float(np.clip(0.35 + 0.12 * np.log2(size_m / 0.1), 0.3, 0.96))


def _scene_object(material: str, rng: np.random.Generator) -> SceneObject:
    obj = sample_object(material, rng)
    frac = _object_frac(obj.size_m) * float(np.exp(rng.normal(0.0, 0.06)))
    if obj.family == "bar":
        aspect, shape = float(rng.uniform(2.0, 3.5)), "rect"
    elif obj.family in ("shell", "block"):
        aspect, shape = float(rng.uniform(0.8, 1.25)), "ellipse"
    else:
        aspect, shape = float(rng.uniform(0.8, 1.6)), "rect"
    centre = (float(rng.uniform(0.4, 0.6)), float(rng.uniform(0.5, 0.65)))
    return SceneObject(obj, min(frac, 0.98), aspect, shape, centre, int(rng.integers(2**31)))


def plan_video(world: WorldConfig, rng: np.random.Generator) -> VideoPlan:
    """Draw a recording: room, objects, and ``world.hits_per_video`` events on a timeline."""
    recording = sample_recording(rng)
    materials = [PAPER_MATERIALS[int(i)] for i in rng.integers(len(PAPER_MATERIALS), size=world.objects_per_video)]
    objects = [_scene_object(m, rng) for m in materials]
    events: list[Event] = []
    t = float(rng.uniform(0.5, 0.9))
    current = int(rng.integers(len(objects)))
    close_next = False
    for i in range(world.hits_per_video):
        if i > 0 and not close_next and rng.random() < 0.45:  # the camera moves on to another object
            current = int(rng.integers(len(objects)))
        so = objects[current]
        material = so.obj.material
        action = "scratch" if rng.random() < world.scratch_prob else "hit"
        reaction = "static"
        if rng.random() < world.moving_prob:
            reaction = "non-rigid-motion" if material in SOFT else "rigid-motion"
        label = UNKNOWN if rng.random() < world.unlabelled_prob else material
        velocity = float(np.clip(V_REF * np.exp(rng.normal(0.0, 0.45)), 0.4, 5.0))
        drag = float(rng.uniform(0.15, 0.4)) if action == "scratch" else 0.0
        w = so.frac * (so.aspect**0.5)
        h = so.frac / (so.aspect**0.5)
        contact = (so.centre[0] + float(rng.uniform(-0.2, 0.2)) * min(w, 0.8),
                   so.centre[1] + float(rng.uniform(-0.15, 0.15)) * min(h, 0.6))
        contact = (float(np.clip(contact[0], 0.15, 0.8)), float(np.clip(contact[1], 0.35, 0.85)))
        stick_angle = float(rng.uniform(np.radians(22), np.radians(42)))
        lift = float(rng.uniform(np.radians(25), np.radians(40)))
        tip_speed = 3.5 * velocity / V_REF  # frame widths per second at contact
        approach = 2 * 0.9 * lift / tip_speed  # quadratic ease-in over the lift angle (see render.lift)
        rebound = approach / max(MATERIALS[material].restitution, 0.35)
        move = (0.0, 0.0)
        if reaction != "static":
            ang = rng.uniform(0, 2 * np.pi)
            amp = 0.03 if reaction == "non-rigid-motion" else 0.07
            move = (float(amp * np.cos(ang)), float(amp * np.sin(ang)))
        sr = world.sample_rate
        events.append(Event(round(t * sr) / sr, current, label, action, reaction, velocity, drag, contact,
                            stick_angle, lift, approach, rebound, move))
        # next onset: >= min_gap after this one (after the drag of a scratch), a few quick double hits
        close_next = action == "hit" and rng.random() < world.close_pair_prob
        if close_next:
            gap = float(rng.uniform(0.10, 0.24))
        else:
            gap = world.min_gap + float(rng.exponential(world.mean_gap - world.min_gap))
            gap = min(gap, 2.5) + drag
        t += gap
    duration = events[-1].time + events[-1].drag + float(rng.uniform(0.6, 0.9))
    return VideoPlan(recording, objects, events, duration, float(rng.uniform(1.0, 4.0)), int(rng.integers(2**31)))
