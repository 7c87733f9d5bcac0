"""Frames of a recording: room background, the textured object, the drumstick, camera shake, noise.

All drawing is vectorised numpy over whole images or the stick's bounding box. Geometry (frame
fractions, y down): the stick is held from above the frame's right edge; it pivots about a point
0.9 frame widths from its tip, swinging down by ``lift_angle`` so that its tip touches the contact
point exactly at the event time (quadratic ease-in: fastest at contact, speed ~ strike velocity),
then lifts off (slower on soft, low-restitution surfaces). The tip is then the lowest point of the
stick, which is how the tests find the contact frame in the decoded video.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from physdiff.world.scene import Event, SceneObject, VideoPlan
from physdiff.world.textures import fractal_noise, material_texture

STICK_RGB = np.array([0.16, 0.66, 0.26], np.float32)  # green lacquer (no surface uses green hues)
STICK_LENGTH = 0.9  # frame widths from pivot to tip


def lift(event: Event, t: float) -> float:
    """How far the stick is raised for this event at time t: 0 at contact (and while dragging), 1 at rest."""
    if t < event.time:
        u = (event.time - t) / event.approach_s
    elif t <= event.time + event.drag:
        return 0.0
    else:
        u = (t - event.time - event.drag) / event.rebound_s
    u = min(u, 1.0)
    return 1.0 - (1.0 - u) ** 2  # quadratic: speed is largest at contact, zero at rest


def stick_pose(events: list[Event], t: float) -> tuple[Event, float]:
    """The event that governs the stick at time t (the one it is closest to striking) and its lift."""
    lifts = [lift(e, t) for e in events]
    i = int(np.argmin(lifts))
    return events[i], lifts[i]


def _tip_and_pivot(e: Event, h: float, t: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    cx, cy = e.contact
    if e.drag and e.time <= t:  # a scratch slides the contact point along the surface
        s = min((t - e.time) / e.drag, 1.0)
        cx -= 0.12 * s
    length = STICK_LENGTH * size
    pivot = np.array([cx * size + length * np.cos(e.stick_angle), cy * size - length * np.sin(e.stick_angle)])
    alpha = e.stick_angle - e.lift_angle * h  # raise by rotating about the pivot
    tip = pivot + length * np.array([-np.cos(alpha), np.sin(alpha)])
    return tip.astype(np.float32), pivot.astype(np.float32)


def draw_capsule(img: np.ndarray, p0: np.ndarray, p1: np.ndarray, r0: float, r1: float,
                 rgb: np.ndarray | None, opacity: float = 1.0) -> None:
    """Alpha-blend a tapered capsule p0 -> p1 (radii r0 -> r1, px) into img (H, W, 3) in place.

    ``rgb`` None draws a shadow (darkening); otherwise a cylinder with diffuse shading and a highlight.
    """
    hgt, wid = img.shape[:2]
    rmax = max(r0, r1) + 1.5
    x0 = int(max(0, np.floor(min(p0[0], p1[0]) - rmax)))
    x1 = int(min(wid, np.ceil(max(p0[0], p1[0]) + rmax)))
    y0 = int(max(0, np.floor(min(p0[1], p1[1]) - rmax)))
    y1 = int(min(hgt, np.ceil(max(p0[1], p1[1]) + rmax)))
    if x0 >= x1 or y0 >= y1:
        return
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)  # (h, w) pixel centres
    d = p1 - p0
    s = np.clip(((xs - p0[0]) * d[0] + (ys - p0[1]) * d[1]) / max(float(d @ d), 1e-6), 0.0, 1.0)
    dist = np.hypot(xs - (p0[0] + s * d[0]), ys - (p0[1] + s * d[1]))
    r = r0 + (r1 - r0) * s
    a = (np.clip(r - dist + 0.5, 0.0, 1.0) * opacity)[..., None]  # (h, w, 1) anti-aliased coverage
    patch = img[y0:y1, x0:x1]
    if rgb is None:
        patch *= 1.0 - 0.45 * a
        return
    across = np.clip(dist / np.maximum(r, 1e-3), 0.0, 1.0)
    shade = 0.55 + 0.45 * np.sqrt(1.0 - across**2)
    colour = rgb * shade[..., None] + 0.25 * np.exp(-((across - 0.35) ** 2) / 0.02)[..., None]
    patch *= 1.0 - a
    patch += a * colour


class Renderer:
    """Draws the frames of one planned video at ``size`` px; iterate with :meth:`frames`."""

    def __init__(self, plan: VideoPlan, size: int, fps: float, rng: np.random.Generator):
        self.plan, self.size, self.fps = plan, size, fps
        self.pad = max(2, int(round(0.03 * size)))
        self.canvas_size = size + 2 * self.pad
        self.rng = rng
        n = self.num_frames
        # camera: slow hand-held drift (smoothed random walk), in px
        walk = np.cumsum(rng.normal(0.0, 0.25, (n, 2)), axis=0)
        walk -= np.linspace(0, 1, n)[:, None] * walk[-1]  # stay near the centre
        self.drift = np.clip(walk * size / 224.0, -self.pad + 1, self.pad - 1).astype(np.float32)
        self.noise_bank = rng.normal(0.0, plan.sensor_noise, (4, size, size, 3)).astype(np.float32)
        self.flicker = (1.0 + 0.015 * np.sin(2 * np.pi * 2.0 * np.arange(n) / fps + rng.uniform(0, 6))).astype(np.float32)
        self.background = self._background()
        self.layers = [self._object_layer(o) for o in plan.objects]
        self.static = [self._composite(i, (0, 0)) for i in range(len(plan.objects))]
        # shots: the camera points at the object of the nearest event (cuts half-way between events)
        times = np.array([e.time for e in plan.events])
        self.cuts = (times[1:] + times[:-1]) / 2

    @property
    def num_frames(self) -> int:
        return int(np.ceil(self.plan.duration * self.fps))

    def _background(self) -> np.ndarray:
        c, room = self.canvas_size, self.plan.recording.room
        rng = np.random.default_rng(self.plan.background_seed)
        y = np.linspace(0, 1, c, dtype=np.float32)[:, None, None]
        horizon = float(rng.uniform(0.2, 0.4))
        wall = np.array(room.wall, np.float32) / 255 * float(rng.uniform(0.85, 1.1))
        floor = np.array(room.floor, np.float32) / 255 * float(rng.uniform(0.85, 1.1))
        img = np.where(y < horizon, wall * (0.85 + 0.3 * y), floor * (1.1 - 0.3 * y)) * np.ones((1, c, 1), np.float32)
        blobs = fractal_noise(rng, c, c, c * 0.4, 2)[..., None]  # furniture, shadows
        return np.clip(img * (1 + 0.25 * blobs), 0, 1).astype(np.float32)

    def _object_layer(self, so: SceneObject) -> tuple[np.ndarray, np.ndarray]:
        """(rgb (c, c, 3), alpha (c, c, 1)) of the object on the padded canvas."""
        c, p = self.canvas_size, self.pad
        rng = np.random.default_rng(so.texture_seed)
        tex = material_texture(so.obj.material, c, c, self.size, rng, self.background)
        w = so.frac * so.aspect**0.5 * self.size / 2
        h = so.frac / so.aspect**0.5 * self.size / 2
        ys, xs = np.mgrid[0:c, 0:c].astype(np.float32)
        dx = (xs - (p + so.centre[0] * self.size)) / max(w, 1)
        dy = (ys - (p + so.centre[1] * self.size)) / max(h, 1)
        if so.shape == "ellipse":
            sdist = (np.sqrt(dx**2 + dy**2) - 1.0) * min(w, h)
        else:
            sdist = np.maximum(np.abs(dx) * w - w, np.abs(dy) * h - h)
        alpha = np.clip(0.5 - sdist, 0.0, 1.0)[..., None]
        edge = np.exp(-((sdist + 1.0) ** 2) / 2.0)[..., None]  # rim light / bevel
        tex = np.clip(tex * (1 - 0.25 * edge) + 0.1 * edge, 0, 1)
        return tex.astype(np.float32), alpha.astype(np.float32)

    def _composite(self, i: int, shift: tuple[int, int]) -> np.ndarray:
        rgb, alpha = self.layers[i]
        if shift != (0, 0):
            rgb = np.roll(rgb, shift, axis=(0, 1))
            alpha = np.roll(alpha, shift, axis=(0, 1))
        # a soft contact shadow below the object, then the object
        shadow = np.roll(alpha, (max(1, self.size // 60), max(1, self.size // 80)), axis=(0, 1))
        bg = self.background * (1 - 0.35 * shadow)
        return bg * (1 - alpha) + rgb * alpha

    def shot(self, t: float) -> int:
        """Index of the event whose object the camera shows at time t."""
        return int(np.searchsorted(self.cuts, t))

    def frame(self, k: int) -> np.ndarray:
        """Frame k (time k / fps) as (size, size, 3) uint8 RGB."""
        t = k / self.fps
        size, p = self.size, self.pad
        shot_event = self.plan.events[self.shot(t)]
        canvas = self.static[shot_event.obj]
        if shot_event.reaction != "static" and t > shot_event.time:  # the struck object moves
            s = 1.0 - np.exp(-(t - shot_event.time) / 0.08)
            shift = (int(round(shot_event.move[1] * size * s)), int(round(shot_event.move[0] * size * s)))
            canvas = self._composite(shot_event.obj, shift)
        dx, dy = self.drift[k]
        for e in self.plan.events:  # impact shake: a few px, decaying over ~0.1 s, grows with velocity
            if 0.0 <= t - e.time < 0.25:
                amp = 0.006 * size * e.velocity * np.exp(-(t - e.time) / 0.05)
                dy += amp * np.sin(2 * np.pi * 18 * (t - e.time))
        ox = int(np.clip(round(p + dx), 0, 2 * p))
        oy = int(np.clip(round(p + dy), 0, 2 * p))
        img = canvas[oy:oy + size, ox:ox + size].copy()  # (S, S, 3) float32
        # the stick, in canvas coordinates minus the camera offset
        ev, h = stick_pose(self.plan.events, t)
        tip, pivot = _tip_and_pivot(ev, h, t, size)
        offset = np.array([ox - p, oy - p], np.float32)
        r = max(1.8, 0.022 * size)
        lift_shadow = np.array([0.02 + 0.05 * h, 0.03 + 0.08 * h], np.float32) * size
        draw_capsule(img, pivot - offset + lift_shadow, tip - offset + lift_shadow, r, r * 0.8, None, 0.8 - 0.4 * h)
        draw_capsule(img, pivot - offset, tip - offset, r, r * 0.8, STICK_RGB)
        draw_capsule(img, tip - offset, tip - offset, r * 1.15, r * 1.15, STICK_RGB * 1.15)  # the bead
        img = img * (255.0 * self.flicker[k]) + self.noise_bank[k % 4]
        return np.clip(img, 0, 255).astype(np.uint8)

    def frames(self) -> Iterator[np.ndarray]:
        for k in range(self.num_frames):
            yield self.frame(k)
