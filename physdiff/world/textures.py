"""Per-material surface textures, vectorised numpy (no per-pixel Python).

Each material has its own kind of pattern (wood grain, brushed metal sheen, glazed tiles, see-through
glass with streaks, woven cloth, glossy plastic, matte drywall, fuzzy carpet, ruled/printed paper,
speckled rock) and each object draws its own hue, scale, orientation and lighting, so the class is
identifiable at 64 px without every instance looking alike. Green hues (65-185 degrees) are left to
the drumstick, whose lacquer the tests detect.
"""

from __future__ import annotations

import colorsys

import numpy as np
from scipy import ndimage

STICK_HUE_BAND = (65.0, 185.0)  # degrees kept free for the stick (green lacquer)


def _hue(rng: np.random.Generator, lo: float = 0.0, hi: float = 360.0) -> float:
    """A hue in [lo, hi) degrees outside the stick's green band."""
    for _ in range(100):
        h = float(rng.uniform(lo, hi)) % 360.0
        if not STICK_HUE_BAND[0] <= h <= STICK_HUE_BAND[1]:
            return h
    return 20.0


def _rgb(h_deg: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb(h_deg / 360.0, float(np.clip(s, 0, 1)), float(np.clip(v, 0, 1))), np.float32)


def value_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Smooth noise in ~[-1, 1] with features of ``cell`` pixels: a random grid, bilinearly upsampled. (h, w)"""
    gh, gw = max(2, int(np.ceil(h / cell)) + 2), max(2, int(np.ceil(w / cell)) + 2)
    grid = rng.uniform(-1.0, 1.0, (gh, gw)).astype(np.float32)
    up = ndimage.zoom(grid, (h / (gh - 1), w / (gw - 1)), order=1)
    return up[:h, :w]


def fractal_noise(rng: np.random.Generator, h: int, w: int, cell: float, octaves: int = 3) -> np.ndarray:
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    for k in range(octaves):
        out += amp * value_noise(rng, h, w, max(1.0, cell / 2**k))
        total += amp
        amp *= 0.5
    return out / total


def _coords(h: int, w: int, angle: float) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    c, s = np.cos(angle), np.sin(angle)
    return x * c + y * s, -x * s + y * c


def material_texture(material: str, h: int, w: int, frame: int, rng: np.random.Generator,
                     background: np.ndarray) -> np.ndarray:
    """(h, w, 3) float32 RGB in [0, 1] of a surface of ``material``; ``frame`` is the frame size in px
    (pattern scales follow it), ``background`` (h, w, 3) shows through transparent materials."""
    u, v = _coords(h, w, float(rng.uniform(-0.4, 0.4)) + (np.pi / 2 if rng.random() < 0.5 else 0.0))
    light = 1.0 + 0.18 * value_noise(rng, h, w, frame * 0.8)[..., None]  # uneven lighting
    px = max(frame / 224.0, 0.3)  # scale for detail sizes
    if material == "wood":
        base = _rgb(_hue(rng, 18, 40), rng.uniform(0.45, 0.75), rng.uniform(0.35, 0.8))
        warp = fractal_noise(rng, h, w, frame * 0.25, 2) * rng.uniform(2.0, 5.0)
        period = frame * rng.uniform(0.04, 0.09)
        grain = np.sin(2 * np.pi * (v / period + warp))
        plank = frame * rng.uniform(0.2, 0.45)
        seam = (np.abs(((v + plank / 2) % plank) - plank / 2) < max(0.8, 1.2 * px)).astype(np.float32)
        img = base * (0.78 + 0.22 * grain[..., None]) * (1 - 0.45 * seam[..., None])
    elif material == "metal":
        base = _rgb(_hue(rng, 190, 240) if rng.random() < 0.5 else _hue(rng, 20, 45), rng.uniform(0.0, 0.15),
                    rng.uniform(0.5, 0.85))
        brushed = value_noise(rng, h, w * 1, 1.5 * px + 1)  # fine streaks, stretched along u below
        streak = ndimage.uniform_filter1d(brushed, size=max(3, int(frame * 0.3)), axis=int(rng.integers(2)))
        centre = rng.uniform(0.2, 0.8) * h
        sheen = np.exp(-(((v - centre) / (frame * rng.uniform(0.08, 0.2))) ** 2))
        img = base * (0.85 + 0.6 * streak[..., None]) + 0.55 * sheen[..., None]
    elif material == "ceramic":
        base = _rgb(_hue(rng), rng.uniform(0.0, 0.3), rng.uniform(0.8, 0.97))
        tile = frame * rng.uniform(0.14, 0.3)
        gx = np.abs(((u + tile / 2) % tile) - tile / 2) < max(0.8, 1.6 * px)
        gy = np.abs(((v + tile / 2) % tile) - tile / 2) < max(0.8, 1.6 * px)
        grout = (gx | gy).astype(np.float32)[..., None]
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        hl = np.exp(-(((x - rng.uniform(0.2, 0.8) * w) ** 2 + (y - rng.uniform(0.2, 0.8) * h) ** 2)
                      / (2 * (frame * 0.12) ** 2)))
        img = base * (1 - grout * 0.45) + 0.35 * hl[..., None]
    elif material == "glass":
        tint = _rgb(_hue(rng, 175, 215), rng.uniform(0.15, 0.4), 1.0)
        period = frame * rng.uniform(0.12, 0.25)
        streak = np.clip(np.sin(2 * np.pi * (u + v) / period) * 3 - 2.2, 0, 1)
        img = 0.55 * background * tint + 0.25 * tint + 0.7 * streak[..., None]
    elif material == "cloth":
        base = _rgb(_hue(rng), rng.uniform(0.4, 0.85), rng.uniform(0.35, 0.85))
        period = max(3.0, frame * rng.uniform(0.025, 0.045))
        weave = np.sin(2 * np.pi * u / period) * np.sin(2 * np.pi * v / period)
        img = base * (0.8 + 0.25 * weave[..., None])
        if rng.random() < 0.5:  # plaid stripes in a second colour
            band = frame * rng.uniform(0.12, 0.25)
            stripes = ((np.floor(u / band) + np.floor(v / band)) % 2)[..., None]
            img = img * (1 - 0.35 * stripes) + 0.35 * stripes * _rgb(_hue(rng), 0.6, 0.6)
        img = img * (1 + 0.12 * fractal_noise(rng, h, w, frame * 0.2, 2)[..., None])  # folds
    elif material == "plastic":
        base = _rgb(_hue(rng), rng.uniform(0.65, 1.0), rng.uniform(0.55, 0.95))
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        hl = np.exp(-(((x - rng.uniform(0.25, 0.75) * w) ** 2 + (y - rng.uniform(0.2, 0.5) * h) ** 2)
                      / (2 * (frame * rng.uniform(0.06, 0.14)) ** 2)))
        grad = 0.85 + 0.3 * (v / max(h, 1))
        img = base * grad[..., None] + 0.6 * hl[..., None]
    elif material == "drywall":
        base = _rgb(_hue(rng, 20, 60) if rng.random() < 0.7 else _hue(rng), rng.uniform(0.02, 0.15), rng.uniform(0.75, 0.92))
        speck = rng.normal(0.0, 0.035, (h, w)).astype(np.float32)
        img = base * (1 + speck[..., None] + 0.05 * fractal_noise(rng, h, w, frame * 0.3)[..., None])
        seam_pos = rng.uniform(0.3, 0.7) * w
        seam = np.exp(-(((u - seam_pos) / (frame * 0.03)) ** 2))
        img = img * (1 - 0.06 * seam[..., None])
        for _ in range(int(rng.integers(2, 6))):  # screw heads
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
            y, x = np.ogrid[0:h, 0:w]
            img = img * (1 - 0.35 * ((y - cy) ** 2 + (x - cx) ** 2 < (1.5 * px + 0.6) ** 2)[..., None])
    elif material == "carpet":
        base = _rgb(_hue(rng), rng.uniform(0.3, 0.7), rng.uniform(0.25, 0.6))
        fuzz = rng.normal(0.0, 0.22, (h, w)).astype(np.float32)
        fuzz = ndimage.uniform_filter(fuzz, size=2) * 1.6
        loops = value_noise(rng, h, w, max(2.0, frame * 0.02))
        img = base * (1 + 0.5 * fuzz[..., None] + 0.2 * loops[..., None])
        if rng.random() < 0.5:  # border or motif
            band = frame * rng.uniform(0.1, 0.2)
            motif = (np.sin(2 * np.pi * u / band) * np.sin(2 * np.pi * v / band) > 0.5)[..., None]
            img = np.where(motif, img * 0.6 + 0.4 * _rgb(_hue(rng), 0.6, 0.5), img)
    elif material == "paper":
        base = _rgb(_hue(rng, 30, 60), rng.uniform(0.0, 0.12), rng.uniform(0.88, 1.0))
        crease = 1 - 0.18 * np.abs(fractal_noise(rng, h, w, frame * 0.35, 2))
        img = base * crease[..., None]
        kind = rng.integers(3)
        line = frame * rng.uniform(0.05, 0.08)
        rows = (np.abs(((v + line / 2) % line) - line / 2) < max(0.6, 0.9 * px))[..., None]
        if kind == 0:  # ruled paper
            img = np.where(rows, img * 0.75 + 0.25 * _rgb(215, 0.6, 0.8), img)
        elif kind == 1:  # print: rows of dark word-like dashes
            words = (value_noise(rng, h, w, max(2.0, frame * 0.03)) > 0.0)[..., None]
            band = (np.abs(((v + line / 2) % line) - line / 2) < line * 0.25)[..., None]
            img = np.where(band & words, img * 0.35, img)
    elif material == "rock":
        base = _rgb(_hue(rng, 10, 45), rng.uniform(0.0, 0.3), rng.uniform(0.35, 0.7))
        n1 = fractal_noise(rng, h, w, frame * 0.2, 3)
        speck = rng.random((h, w)).astype(np.float32)
        dark = (speck < 0.12)[..., None]
        bright = (speck > 0.93)[..., None]
        img = base * (0.8 + 0.35 * n1[..., None])
        img = np.where(dark, img * 0.4, img)
        img = np.where(bright, np.minimum(img * 1.6 + 0.15, 1.0), img)
        img = ndimage.uniform_filter(img, size=(2, 2, 1)) if frame >= 96 else img
    else:
        raise ValueError(f"no texture for material {material!r}")
    return np.clip(img * light, 0.0, 1.0).astype(np.float32)
