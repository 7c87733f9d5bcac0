"""Scoring detected onsets against a world's ground-truth contact times (``<id>_physics.json``).

A detection matches an annotated event when their frames (``floor(t * fps)``) differ by at most
``tol_frames`` (1: "within +-1 frame"); matching is one-to-one, closest pairs first. Per category:

- ``close``: a hit whose neighbour (before or after) is 0.10-0.24 s away (the world's quick double hits);
- ``scratch``: ``action == "scratch"`` (the stick stops on the surface and slides, no rebound);
- ``hit``: every other event (isolated hits, whatever their reaction).

Recall of a category = its matched events / its events; precision = matched detections / detections
assigned to it (a detection belongs to the category of the event it matched, else of the nearest event).

    report = evaluate_world("data/world/tiny", DetectorSettings())       # {"all": {...}, "hit": ..., "videos": [...]}
    print(format_table({"64 px": report}))
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from physdiff.errors import DataError
from physdiff.onsets.detect import DetectorSettings, Onset, detect_onsets

CLOSE_GAP = (0.10, 0.24)  # s: "close double hits", counted apart
CATEGORIES = ("hit", "close", "scratch")


@dataclass(frozen=True)
class TruthEvent:
    time_s: float
    action: str
    reaction: str
    category: str


def truth_events(physics_json: str | Path) -> tuple[list[TruthEvent], float]:
    """The annotated contacts of one world video and its fps, from ``<id>_physics.json``."""
    path = Path(physics_json)
    try:
        d = json.loads(path.read_text())
        fps = d["fps"][0] / d["fps"][1]
        raw = [(float(e["contact_time_s"]), e["action"], e["reaction"]) for e in d["events"]]
    except (OSError, ValueError, KeyError, TypeError, IndexError) as e:
        raise DataError(f"unreadable ground truth {path}: {e}") from None
    raw.sort()
    out = []
    for i, (t, action, reaction) in enumerate(raw):
        gaps = [abs(t - raw[j][0]) for j in (i - 1, i + 1) if 0 <= j < len(raw)]
        close = any(CLOSE_GAP[0] - 1e-6 <= g <= CLOSE_GAP[1] + 1e-6 for g in gaps)
        cat = "scratch" if action == "scratch" else "close" if close else "hit"
        out.append(TruthEvent(t, action, reaction, cat))
    return out, fps


def match(detected: Sequence[float], truth: Sequence[float], fps: float, tol_frames: int = 1) -> list[tuple[int, int]]:
    """One-to-one (detection index, truth index) pairs whose frames differ by <= tol_frames, closest first."""
    fd = [int(np.floor(t * fps + 1e-6)) for t in detected]
    ft = [int(np.floor(t * fps + 1e-6)) for t in truth]
    pairs = sorted((abs(detected[i] - truth[j]), i, j) for i in range(len(fd)) for j in range(len(ft))
                   if abs(fd[i] - ft[j]) <= tol_frames)
    used_d, used_t, out = set(), set(), []
    for _, i, j in pairs:
        if i not in used_d and j not in used_t:
            used_d.add(i)
            used_t.add(j)
            out.append((i, j))
    return out


def score_video(onsets: Sequence[Onset], truth: Sequence[TruthEvent], fps: float, tol_frames: int = 1) -> dict[str, Any]:
    """Per-category counts (events, matched, detections, true detections) and matched errors (ms) for one video."""
    det = [o.time_s for o in onsets]
    tt = [e.time_s for e in truth]
    pairs = match(det, tt, fps, tol_frames)
    by_det = dict(pairs)
    stats = {c: {"events": 0, "matched": 0, "detections": 0, "true_detections": 0, "errors_ms": []} for c in CATEGORIES}
    for e in truth:
        stats[e.category]["events"] += 1
    for i, j in pairs:
        c = truth[j].category
        stats[c]["matched"] += 1
        stats[c]["errors_ms"].append(1000.0 * (det[i] - tt[j]))
    for i, t in enumerate(det):
        if i in by_det:
            c = truth[by_det[i]].category
            stats[c]["true_detections"] += 1
        elif truth:
            c = truth[int(np.argmin([abs(t - x) for x in tt]))].category
        else:
            c = "hit"
        stats[c]["detections"] += 1
    return stats


def summarise(per_video: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Pool video scores: per category and "all", precision / recall and |error| median / p90 (ms)."""
    out: dict[str, dict[str, Any]] = {}
    for c in (*CATEGORIES, "all"):
        cats = CATEGORIES if c == "all" else (c,)
        ev = sum(v[k]["events"] for v in per_video for k in cats)
        mt = sum(v[k]["matched"] for v in per_video for k in cats)
        de = sum(v[k]["detections"] for v in per_video for k in cats)
        td = sum(v[k]["true_detections"] for v in per_video for k in cats)
        err = np.abs([e for v in per_video for k in cats for e in v[k]["errors_ms"]])
        signed = [e for v in per_video for k in cats for e in v[k]["errors_ms"]]
        out[c] = {"events": ev, "detections": de, "matched": mt,
                  "recall": mt / ev if ev else float("nan"), "precision": td / de if de else float("nan"),
                  "median_ms": float(np.median(err)) if err.size else float("nan"),
                  "p90_ms": float(np.percentile(err, 90)) if err.size else float("nan"),
                  "bias_ms": float(np.median(signed)) if signed else float("nan")}
    return out


def bootstrap_ci(per_video: Sequence[dict[str, Any]], n: int = 2000, seed: int = 0) -> dict[str, dict[str, tuple[float, float]]]:
    """95 % intervals of precision, recall and median |error| per category, resampling *videos* (events in one
    video share its camera, room and objects, so they are not independent draws)."""
    rng = np.random.default_rng(seed)
    draws = [summarise([per_video[i] for i in rng.integers(0, len(per_video), len(per_video))]) for _ in range(n)]
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for c in (*CATEGORIES, "all"):
        out[c] = {}
        for key in ("precision", "recall", "median_ms"):
            vals = np.array([d[c][key] for d in draws], float)
            vals = vals[np.isfinite(vals)]
            out[c][key] = (float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))) if vals.size else (np.nan, np.nan)
    return out


def _one(args: tuple[str, dict]) -> dict[str, Any]:
    video, settings = args
    s = DetectorSettings(**settings)
    t0 = time.perf_counter()
    onsets = detect_onsets(video, s, require=False)
    sec = time.perf_counter() - t0
    truth, fps = truth_events(video.replace("_denoised.mp4", "_physics.json"))
    return {"video": Path(video).name, "seconds": sec, "onsets": [o.to_dict() for o in onsets],
            "scores": score_video(onsets, truth, fps)}


def evaluate_world(world_dir: str | Path, settings: DetectorSettings | None = None, *, videos: int | None = None,
                   workers: int = 1) -> dict[str, Any]:
    """Detect onsets in every video of a generated world and score them: {"summary", "videos", "seconds"}."""
    from dataclasses import asdict

    world = Path(world_dir)
    paths = sorted(str(p) for p in world.glob("*_denoised.mp4"))
    if not paths:
        raise DataError(f"no <id>_denoised.mp4 videos in {world}: generate a world with shards/synth.py")
    paths = paths[:videos] if videos else paths
    s = settings or DetectorSettings()
    jobs = [(p, asdict(s)) for p in paths]
    t0 = time.perf_counter()
    if workers > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers) as pool:
            results = pool.map(_one, jobs)
    else:
        results = [_one(j) for j in jobs]
    per_video = [r["scores"] for r in results]
    return {"summary": summarise(per_video), "ci": bootstrap_ci(per_video), "videos": results,
            "seconds": time.perf_counter() - t0, "settings": asdict(s)}


def format_table(reports: dict[str, dict[str, Any]]) -> str:
    """Markdown table: one row per (world, category); [95 % interval over videos] where ``ci`` is present."""
    lines = ["| world | category | events | detections | precision | recall | median err (ms) | p90 err (ms) | bias (ms) |",
             "|---|---|---|---|---|---|---|---|---|"]

    def cell(rep: dict, c: str, key: str, fmt: str) -> str:
        v = fmt.format(rep["summary"][c][key])
        ci = rep.get("ci", {}).get(c, {}).get(key)
        return v if ci is None else f"{v} [{fmt.format(ci[0])}, {fmt.format(ci[1])}]"

    for name, rep in reports.items():
        summ = rep["summary"]
        for c in ("all", *CATEGORIES):
            r = summ[c]
            lines.append(f"| {name} | {c} | {r['events']} | {r['detections']} | {cell(rep, c, 'precision', '{:.3f}')} | "
                         f"{cell(rep, c, 'recall', '{:.3f}')} | {cell(rep, c, 'median_ms', '{:.1f}')} | {r['p90_ms']:.1f} | "
                         f"{r['bias_ms']:+.1f} |")
    return "\n".join(lines)
