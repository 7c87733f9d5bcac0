"""The striking object's position in every frame of a video, from motion alone (no colour, no shape model).

A strike is seen as a moving object (the drumstick) that travels toward a surface and stops or rebounds
there. This module turns a video into a one-dimensional trajectory of that object, which
:mod:`physdiff.onsets.detect` scans for the abrupt reversals that are contacts:

1. **Decode** every frame with PyAV, scaled down by an integer factor so the longer side is at most
   ``max_side`` px (a 224 px clip stays native: halving it turns one-pixel camera steps into
   half-pixel ones that the integer stabiliser cannot undo, and precision fell from 0.92 to 0.61
   on a 224 px world video).
2. **Stabilise**: a hand-held camera drifts and shakes. For every pair of consecutive frames the
   integer translation minimising the *truncated* absolute difference is found (coarse to fine for
   frames over 96 px): the moving stick costs the same at every shift, textured background decides.
3. **Shots**: a pair that still differs far more than the video's typical pair (2x its median
   residual), or whose change persists over a quarter of the picture, starts a new shot (a cut, or
   the camera swung to another surface); backgrounds never mix two shots.
4. **Foreground**: the background of frame k is the per-pixel temporal median of 15 aligned frames of
   its shot within ``window_s`` seconds; the moving object is what differs from it. A stick resting
   for long becomes background, which only adds a "ghost" at its resting place: constant while the
   stick strikes elsewhere, so it shifts the centroid but cannot move its cusp in time.
5. **Trajectory**: the foreground-weighted centroid along the strike direction (image down by
   default: the stick comes down onto the surface), in frame heights, and the foreground mass.

    frames, fps = decode_video("clip.mp4")          # (N, H, W, 3) float32, Fraction(30000, 1001)
    track = motion_track(frames, fps)               # MotionTrack: position (N,), mass (N,), shot (N,)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from physdiff.errors import DataError

DIRECTIONS = {"down": (1.0, 0.0), "up": (-1.0, 0.0), "right": (0.0, 1.0), "left": (0.0, -1.0)}  # (dy, dx)


@dataclass
class MotionTrack:
    """Per-frame trajectory of the moving object: NaN where nothing moves (or the frame cannot be judged)."""

    position: np.ndarray  # (N,) centroid along the strike direction, in frame heights (larger = nearer the surface)
    mass: np.ndarray  # (N,) share of the picture that is foreground (weighted), 0 when nothing moves
    shot: np.ndarray  # (N,) int shot index: a new shot starts after a cut (or a jump the stabiliser cannot follow)
    shift: np.ndarray  # (N, 2) int camera offset (dy, dx) of each frame on its shot's canvas, working px
    fps: Fraction
    size: tuple[int, int]  # (H, W) of the working frames


def decode_video(path: str | Path, max_side: int = 256) -> tuple[torch.Tensor, Fraction]:
    """Every frame of ``path`` as (N, H, W, 3) float32 in [0, 255], longer side <= ``max_side``, and the fps.

    Raises DataError naming the file when it is missing, unreadable, has no video stream or no frames.
    """
    import av

    from physdiff.data.media import SWS_THREADS, _stream_fps

    path = Path(path)
    if not path.is_file():
        raise DataError(f"missing video {path}")
    frames = []
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise DataError(f"no video stream in {path}")
            stream = c.streams.video[0]
            fps = _stream_fps(stream, path)
            w, h = stream.codec_context.width, stream.codec_context.height
            if not w or not h:
                raise DataError(f"video {path} declares no frame size")
            f = max(1, math.ceil(max(w, h) / max_side))  # integer factor: no resampling blur at native size
            ww, hh = max(2, w // f), max(2, h // f)
            for frame in c.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24", width=ww, height=hh, threads=SWS_THREADS))  # (hh, ww, 3) uint8
    except av.error.FFmpegError as e:
        raise DataError(f"unreadable video {path}: {e}") from e
    if not frames:
        raise DataError(f"video {path} holds no decodable frames")
    return torch.from_numpy(np.stack(frames)).float(), fps  # (N, H, W, 3)


CUT_FACTOR = 2.0  # aligned residual / the video's median residual above which a pair is a cut
CHANGED_LEVEL = 45.0  # summed-RGB levels: a pixel that changed this much is not noise or compression
COARSE_ABOVE = 96  # px: larger frames are aligned at half size first
ALIGN_CAP = 30.0  # summed-RGB levels: beyond this a pixel's difference is "changed", however large


def _pair_alignment(x: torch.Tensor, radius: int, around: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Best integer shift between consecutive frames (the camera's motion), ignoring what moves in them.

    x (N, H, W, 3). Returns (shift (N-1, 2) long: frame k+1's pixel (y, x) shows what frame k shows at
    (y + dy, x + dx); residual (N-1,)). The truncated absolute difference is minimised, so the stick
    (a minority of pixels) does not pull the estimate. Large frames are aligned coarse to fine: the
    shift found at half size, doubled, is refined by +-1 px (``around``: those starting points).
    """
    n, h, w, _ = x.shape
    if around is None and min(h, w) > COARSE_ABOVE:
        half = torch.nn.functional.avg_pool2d(x.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1)  # (N, H/2, W/2, 3)
        coarse, _ = _pair_alignment(half, max(2, (radius + 1) // 2))
        return _pair_alignment(x, 1, around=2 * coarse)
    base = torch.zeros((n - 1, 2), dtype=torch.long) if around is None else around
    m = radius + int(base.abs().max()) if n > 1 else radius  # margin that keeps every candidate inside the frame
    if min(h, w) <= 2 * m + 4:
        m = max(radius, min(h, w) // 2 - 3)
        base = base.clamp(-(m - radius), m - radius)
    ref = x[1:, m:h - m, m:w - m]  # (N-1, h', w', 3) centre of frame k+1
    best = torch.full((n - 1,), float("inf"))
    shift = base.clone()
    rows = torch.arange(n - 1)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            sy, sx = base[:, 0] + dy, base[:, 1] + dx  # (N-1,) candidate shift per pair
            cost = torch.empty(n - 1)
            for (cy, cx) in {(int(a), int(b)) for a, b in zip(sy.tolist(), sx.tolist())}:
                sel = rows[(sy == cy) & (sx == cx)]
                cand = x[sel][:, m + cy:h - m + cy, m + cx:w - m + cx]  # (b, h', w', 3)
                # truncated L1: the stick's pixels cost at most ALIGN_CAP whatever the shift, while textured
                # background pixels (a minority on a plain wall, which a median would ignore) still count
                cost[sel] = (cand - ref[sel]).abs().sum(-1).clamp(max=ALIGN_CAP).flatten(1).mean(dim=1)
            better = cost < best - 1e-6
            best = torch.where(better, cost, best)
            shift[better] = torch.stack([sy, sx], 1)[better]
    return shift, best


def _shifted_difference(x: torch.Tensor, k: int, j: int, rel: tuple[int, int]) -> torch.Tensor:
    """|x[k](p) - x[j](p + rel)| summed over RGB, (H, W), NaN where frame j does not cover frame k's pixel."""
    _, h, w, _ = x.shape
    dy, dx = rel
    out = torch.full((h, w), float("nan"))
    y0, y1 = max(0, -dy), min(h, h - dy)
    x0, x1 = max(0, -dx), min(w, w - dx)
    if y0 < y1 and x0 < x1:
        out[y0:y1, x0:x1] = (x[k, y0:y1, x0:x1] - x[j, y0 + dy:y1 + dy, x0 + dx:x1 + dx]).abs().sum(-1)
    return out


def _persistent_change(x: torch.Tensor, shift: torch.Tensor) -> np.ndarray:
    """Share of the picture that changes between frame k and k+1 *and stays changed* (N-1,).

    A pixel counts when both frames before the boundary (k-1, k) differ from both after it (k+1,
    k+2) by more than ``CHANGED_LEVEL``: a cut or a new view changes a large area for good, while a
    moving stick leaves each pixel within a frame or two.
    """
    n = x.shape[0]
    path = torch.cat([torch.zeros((1, 2), dtype=torch.long), torch.cumsum(shift, 0)]).tolist()  # camera path
    out = np.zeros(n - 1)
    for k in range(n - 1):
        before = [i for i in (k - 1, k) if i >= 0]
        after = [j for j in (k + 1, k + 2) if j < n]
        change = None
        for i in before:
            for j in after:
                d = _shifted_difference(x, i, j, (path[j][0] - path[i][0], path[j][1] - path[i][1]))
                d = torch.nan_to_num(d, nan=0.0)
                change = d if change is None else torch.minimum(change, d)
        out[k] = float((change > CHANGED_LEVEL).float().mean())
    return out


def motion_track(frames: torch.Tensor, fps: Fraction, *, window_s: float = 0.5, direction: str = "down",
                 noise_floor: float = 15.0, samples: int = 15, cut_share: float = 0.25,
                 debug: dict | None = None) -> MotionTrack:
    """The moving object's trajectory (see the module docstring) from frames (N, H, W, 3) float32.

    ``window_s``: half-span of the background median (``samples`` frames drawn from it, same shot
    only). ``noise_floor``: summed-RGB levels of foreground below which a pixel counts as unchanged
    (H.264 noise); the per-frame floor is the larger of this and 4x the frame's median foreground.
    ``cut_share``: persistent-change share above which a pair starts a new shot. ``debug``: a dict
    that receives the per-pair alignment residual, cut flags, shots and persistent change.
    Memory: the frames (float32) and their stabilised canvas (float16), ~1.2 MB per frame at 256 px.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {sorted(DIRECTIONS)}, got {direction!r}")
    n, h, w, _ = frames.shape
    radius = max(2, round(0.04 * min(h, w)))  # a hand-held camera moves a few % of the frame per frame at most
    if n < 2 or min(h, w) <= 2 * radius + 4:
        raise ValueError(f"need >= 2 frames larger than {2 * radius + 4} px, got {tuple(frames.shape)}")
    shift, residual = _pair_alignment(frames, radius)
    # a cut (or a jump the stabiliser cannot follow): the aligned pair differs far more than the video's
    # typical pair (which differs only where the stick moved), or over a large area for good
    change = _persistent_change(frames, shift)  # (N-1,)
    cut = (residual > CUT_FACTOR * residual.median()) | torch.from_numpy(change > cut_share)  # (N-1,)
    shot = np.concatenate([[0], np.cumsum(cut.numpy())])  # (N,)
    offset = torch.zeros((n, 2), dtype=torch.long)  # where frame k sits on its shot's canvas
    for k in range(n - 1):
        offset[k + 1] = 0 if cut[k] else offset[k] + shift[k]
    for sh in np.unique(shot):  # centre each shot on the canvas
        sel = torch.from_numpy(shot == sh)
        offset[sel] -= offset[sel].median(dim=0).values
    pad = int(offset.abs().max()) + 1
    # float16 holds 0..255 (and their differences, sums up to 765) exactly, at half the memory
    canvas = torch.full((n, h + 2 * pad, w + 2 * pad, 3), float("nan"), dtype=torch.float16)  # (N, H', W', 3)
    for k in range(n):
        dy, dx = offset[k].tolist()
        canvas[k, pad + dy:pad + dy + h, pad + dx:pad + dx + w] = frames[k]
    ddy, ddx = DIRECTIONS[direction]
    ys = (torch.arange(h + 2 * pad, dtype=torch.float32) - pad) / h  # (H',) frame heights
    xs = (torch.arange(w + 2 * pad, dtype=torch.float32) - pad) / h  # (W',) in frame heights too
    coord = ddy * ys[:, None] + ddx * xs[None, :]  # (H', W') along the strike direction
    half = max(3, round(window_s * float(fps)))
    position = np.full(n, np.nan)
    mass = np.zeros(n)
    for k in range(n):
        lo, hi = k, k
        while lo > 0 and k - lo < half and shot[lo - 1] == shot[k]:
            lo -= 1
        while hi < n - 1 and hi - k < half and shot[hi + 1] == shot[k]:
            hi += 1
        if hi - lo + 1 < 5:  # too short a shot to tell background from a moving object
            continue
        idx = np.unique(np.linspace(lo, hi, samples).round().astype(int))
        bg = torch.nanmedian(canvas[idx], dim=0).values  # (H', W', 3)
        fg = (canvas[k] - bg).abs().sum(-1).float()  # (H', W')
        valid = torch.isfinite(fg)
        fg = torch.where(valid, fg, torch.zeros(()))
        floor = max(noise_floor, 4.0 * float(fg[valid].median()))
        wgt = (fg - floor).clamp(min=0)  # (H', W') foreground weight
        m = float(wgt.sum())
        if m <= 0:
            continue
        position[k] = float((wgt * coord).sum()) / m
        mass[k] = m / (255.0 * 3 * h * w)
    if debug is not None:
        debug.update(residual=residual.numpy(), cut=cut.numpy(), shot=shot, change=change)
    return MotionTrack(position, mass, shot, offset.numpy(), fps, (h, w))
