"""The plan of one recording at a site: its acoustics, the site's objects it strikes, and the annotated events.

A video is recorded at one site (:mod:`physdiff.world.sites`) and strikes ``world.objects_per_video``
of the site's fixed objects (chosen by prominence), each several times in a row (runs of mean
``world.hits_per_object``), as Greatest Hits' walks do. Everything random about a video is drawn
here (from the video's own generator), before any pixel or sample is made, so pictures and sound
share one ground truth; what belongs to the object (its modes, texture, footprint) comes from the
catalogue and is identical in every video, what belongs to the recording (microphone, framing,
strike velocity and position) is drawn per video.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from physdiff.data.labels import UNKNOWN
from physdiff.world.config import WorldConfig
from physdiff.world.environment import Recording, recording_at
from physdiff.world.materials import MATERIALS, V_REF
from physdiff.world.sites import CatalogueObject, Site
from physdiff.world.sound import WorldObject

SOFT = ("cloth", "carpet", "paper")  # these deform (non-rigid motion) rather than slide


@dataclass
class SceneObject:
    """A struck object of the site and where it sits in this video's picture (fractions of the frame)."""

    item: CatalogueObject  # the site's object (id, kind, sound, looks)
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
    site: Site
    recording: Recording
    objects: list[SceneObject]
    events: list[Event]
    duration: float  # s
    sensor_noise: float  # std of the sensor noise, in 8-bit levels
    background_seed: int
    extra: dict = field(default_factory=dict)


def _scene_object(item: CatalogueObject, rng: np.random.Generator) -> SceneObject:
    """The catalogue object as this video frames it: the camera stands a little nearer or farther, off-centre."""
    frac = min(item.frac * float(np.exp(rng.normal(0.0, 0.08))), 0.98)
    centre = (float(rng.uniform(0.4, 0.6)), float(rng.uniform(0.5, 0.65)))
    return SceneObject(item, item.sound, frac, item.aspect, item.shape, centre, item.texture_seed)


def choose_objects(site: Site, k: int, rng: np.random.Generator) -> list[CatalogueObject]:
    """``k`` distinct objects of the site, drawn by prominence (walls and tables get struck more than vases)."""
    p = np.array([o.prominence for o in site.objects])
    idx = rng.choice(len(site.objects), size=min(k, len(site.objects)), replace=False, p=p / p.sum())
    return [site.objects[int(i)] for i in idx]


def plan_video(world: WorldConfig, site: Site, rng: np.random.Generator) -> VideoPlan:
    """Draw a recording at ``site``: its acoustics, the objects struck, ``world.hits_per_video`` events on a timeline.

    The struck objects are visited in turn (then again from the first), each for a run of
    1 + Geometric strikes with mean ``world.hits_per_object``; a quick double hit never ends a run.
    """
    recording = recording_at(site.acoustics, rng)
    objects = [_scene_object(item, rng) for item in choose_objects(site, world.objects_per_video, rng)]
    events: list[Event] = []
    t = float(rng.uniform(0.5, 0.9))
    current = 0
    p_move = 1.0 / world.hits_per_object  # geometric runs: P(the camera moves on after a strike)
    close_next = False
    for i in range(world.hits_per_video):
        if i > 0 and not close_next and len(objects) > 1 and rng.random() < p_move:
            current = (current + 1) % len(objects)  # the walk moves on to the next object
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
    return VideoPlan(site, recording, objects, events, duration, float(rng.uniform(1.0, 4.0)), site.background_seed)
