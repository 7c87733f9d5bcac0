"""Strike onsets from silent video: the instants the moving stick meets the surface, with sub-frame timing.

A contact is an *impulsive reversal*: the stick accelerates toward the surface, and within one frame
its motion stops (a scratch: it then slides along the surface) or reverses (a hit: it rebounds). Its
trajectory along the strike direction (:mod:`physdiff.onsets.track`) is therefore a cusp: a local
extreme where the velocity jumps from fast-toward to away-or-still, unlike the smooth turn at the top
of a swing, which is slow on both sides.

Sub-frame timing. Near contact the stick moves at nearly constant speed (it is fastest there), so the
trajectory is two straight lines meeting at the contact. A frame is an instant sample of it; the line
through the last frames before contact and the line through the first frames after it intersect at
the contact time, which usually falls between two frames. Both ways of splitting the frames around
the extreme are tried; the split whose intersection lands in its own gap (and fits best) wins.

Confidence in [0, 1], the product of three smooth ramps: the approach speed (frame heights per second
of the centroid; a real strike is fast; 0.5 at ``min_speed``), the share of it the contact removes
within a frame (``(v_in - v_out) / v_in``: 1 for a dead stop, > 1 for a rebound; 0.5 at 0.5), and
whether the approach *accelerated* into the surface (last approach step / the one before, 0.5 at
0.6: a swing does, a jump in the picture does not; with a single approach frame, as in a quick
double hit, a rebound of at least 10 % of the approach speed stands in for it).

    onsets = detect_onsets("clip.mp4")              # [Onset(time_s=0.8233, frame=24, confidence=0.87), ...]
    onsets = detect_onsets("clip.mp4", DetectorSettings(min_confidence=0.3))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from physdiff.errors import DataError
from physdiff.onsets.track import MotionTrack, decode_video, motion_track


@dataclass(frozen=True)
class Onset:
    """One detected strike: contact time (s from the video start), the frame on screen then, a confidence in [0, 1]."""

    time_s: float
    frame: int
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        return {"time_s": round(self.time_s, 6), "frame": self.frame, "confidence": round(self.confidence, 4)}


@dataclass
class DetectorSettings:
    """How strikes are found. Speeds are in frame heights per second of the centroid along the strike direction."""

    max_side: int = 256  # working resolution: the longer side is scaled down (integer factor) to at most this
    window_s: float = 0.5  # half-span of the temporal-median background
    direction: str = "down"  # the way the stick travels toward the surface, in the picture
    min_speed: float = 0.4  # approach speed at which speed_score is 0.5
    min_confidence: float = 0.5  # onsets below are dropped
    min_separation_s: float = 0.08  # two detections closer than this are one strike (real double hits are >= 0.1 s apart)
    min_mass: float = 1e-3  # foreground share below which a frame shows no moving object

    def validate(self) -> None:
        if self.max_side < 32:
            raise ValueError(f"max_side must be >= 32 px, got {self.max_side}")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {self.min_confidence}")
        if self.window_s <= 0 or self.min_speed <= 0 or self.min_separation_s < 0:
            raise ValueError("window_s and min_speed must be > 0, min_separation_s >= 0")


@dataclass
class Candidate:
    """A cusp of the trajectory, before thresholding (what the benchmark and tests inspect)."""

    t_frames: float  # contact time in frame units (frame k is the instant k / fps)
    v_in: float  # approach speed, frame heights per frame
    v_out: float  # velocity after contact (negative = rebound), frame heights per frame
    confidence: float


def _ramp(x: float, half: float, width: float) -> float:
    """Logistic in log(x): 0.5 at ``half``, ~0.9 at half * e^width."""
    if x <= 0:
        return 0.0
    return 1.0 / (1.0 + math.exp(-2.2 * math.log(x / half) / width))


def _side_line(y: np.ndarray, idx: list[int]) -> tuple[float, float, float] | None:
    """Least-squares line (slope, value at idx[-1] or idx[0] reference, residual rms) through y[idx] (all finite)."""
    pts = [(i, y[i]) for i in idx if 0 <= i < y.size and np.isfinite(y[i])]
    if len(pts) < 2:
        return None
    t = np.array([p[0] for p in pts], float)
    v = np.array([p[1] for p in pts], float)
    slope, icpt = np.polyfit(t, v, 1)
    res = float(np.sqrt(np.mean((icpt + slope * t - v) ** 2)))
    return float(slope), float(icpt), res


def _approach_points(y: np.ndarray, last: int, n: int) -> list[int]:
    """Up to n frames ending at ``last`` while the object keeps moving toward the surface (stop at the top of the swing)."""
    pts = [last]
    for i in range(last - 1, max(-1, last - n), -1):
        if not np.isfinite(y[i]) or y[i] >= y[pts[-1]]:
            break
        pts.append(i)
    return pts[::-1]


def _after_points(y: np.ndarray, first: int, n: int, approach: float) -> list[int]:
    """Up to n frames from ``first`` until the object heads for the surface again (the next strike of a double hit)."""
    pts = [first]
    for i in range(first + 1, min(y.size, first + n)):
        if not np.isfinite(y[i]) or y[i] - y[pts[-1]] > 0.5 * approach:
            break
        pts.append(i)
    return pts


def cusp_at(y: np.ndarray, k: int, fps: float, settings: DetectorSettings) -> Candidate | None:
    """Sub-frame contact time at a vertex k of the trajectory y (N,), or None when it is no strike.

    The contact lies in (k-1, k) or (k, k+1): each split fits the approach line through up to three
    frames before the gap and the line through up to three after, and intersects them.
    """
    best: tuple[float, float, Candidate] | None = None
    for last in (k, k - 1):  # last approach frame: contact in (last, last + 1)
        first = last + 1
        if last < 1 or first >= y.size or not (np.isfinite(y[last]) and np.isfinite(y[first])):
            continue
        pre_pts = _approach_points(y, last, 3)
        pre = _side_line(y, pre_pts)
        if pre is None or pre[0] <= 0:
            continue
        post = _side_line(y, _after_points(y, first, 3, pre[0]))
        if post is None:  # the object keeps heading for the surface (or vanishes) right after: no contact here
            continue
        a, ia, ra = pre
        b, ib, rb = post
        if a - b <= 0:
            continue
        t = (ib - ia) / (a - b)  # both lines as icpt + slope * frame
        outside = max(last - t, t - first, 0.0)  # frames the intersection lies outside its own gap
        if outside > 0.5:
            continue
        v_in, v_out = a, b
        speed = _ramp(v_in * fps, settings.min_speed, 1.0)
        reversal = _ramp((v_in - v_out) / v_in, 0.5, 0.5)  # 1 = stopped dead, > 1 = rebounded
        steps = np.diff(y[pre_pts])  # approach velocities, oldest first
        if steps.size >= 2:  # a swing accelerates into the surface; a jump in the picture does not
            approach = _ramp(steps[-1] / steps[-2], 0.6, 0.5)
        else:  # one frame of approach (a quick double hit): only a clear rebound makes it a strike
            approach = _ramp(-v_out / v_in, 0.1, 0.5)
        cand = Candidate(float(t), float(v_in), float(v_out), float(speed * reversal * approach))
        key = (outside, ra + rb)
        if best is None or key < best[:2]:
            best = (outside, ra + rb, cand)
    return None if best is None else best[2]


def find_strikes(track: MotionTrack, settings: DetectorSettings | None = None) -> list[Candidate]:
    """Every cusp of a motion track with its confidence (no threshold), one per strike, in time order.

    Candidates are the vertices where the trajectory bends away from the surface (second difference
    negative and locally most so): the peak of a rebound, the knee where a scratch stops.
    """
    s = settings or DetectorSettings()
    y = np.where(track.mass >= s.min_mass, track.position, np.nan)  # (N,)
    fps = float(track.fps)
    bend = np.full(y.size, np.nan)
    bend[1:-1] = y[2:] - 2 * y[1:-1] + y[:-2]  # (N,) second difference, NaN where a neighbour is missing
    bend = np.where(np.isfinite(bend), bend, np.inf)
    cands: list[Candidate] = []
    for k in range(1, y.size - 1):
        if bend[k] < 0 and bend[k] <= bend[k - 1] and bend[k] <= bend[k + 1] and track.shot[k - 1] == track.shot[k] == track.shot[k + 1]:
            c = cusp_at(y, k, fps, s)
            if c is not None:
                cands.append(c)
    # one strike per min_separation: keep the most confident of detections closer than that
    cands.sort(key=lambda c: -c.confidence)
    kept: list[Candidate] = []
    sep = s.min_separation_s * fps
    for c in cands:
        if all(abs(c.t_frames - o.t_frames) >= sep for o in kept):
            kept.append(c)
    return sorted(kept, key=lambda c: c.t_frames)


def detect_onsets(video_path: str | Path, settings: DetectorSettings | None = None, *,
                  require: bool = True) -> list[Onset]:
    """Strike onsets of a video: [Onset(time_s, frame, confidence)] with confidence >= ``min_confidence``.

    ``frame`` is the frame on screen at ``time_s`` (``floor(time_s * fps)``, as :func:`physdiff.data.media.onset_frame`).
    Raises DataError naming the file when it is missing or unreadable, and (``require``) when no strike is found.
    """
    from physdiff.data.media import onset_frame

    s = settings or DetectorSettings()
    s.validate()
    path = Path(video_path)
    frames, fps = decode_video(path, s.max_side)  # (N, H, W, 3)
    if frames.shape[0] < 5:
        raise DataError(f"video {path} holds {frames.shape[0]} frames: too short to find strikes in (need >= 5)")
    track = motion_track(frames, fps, window_s=s.window_s, direction=s.direction)
    out = []
    for c in find_strikes(track, s):
        if c.confidence < s.min_confidence:
            continue
        t = max(0.0, c.t_frames / float(fps))
        out.append(Onset(t, onset_frame(t, fps), c.confidence))
    if require and not out:
        raise DataError(f"no strike detected in {path}: nothing in it moves toward a surface and stops "
                        f"(confidence >= {s.min_confidence}); give the onsets with --onsets or --times")
    return out

