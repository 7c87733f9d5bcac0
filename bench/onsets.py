"""Strike onsets from silent video: precision / recall within +-1 frame and timing error vs ground truth.

    python bench/onsets.py                                   # tiny world at 64 px and at 224 px (generated if missing)
    python bench/onsets.py --sizes 64 --videos 10            # quicker: 10 videos of the 64 px world
    python bench/onsets.py --world /tmp/w64 --world /tmp/w224 --json out.json   # worlds already on disk
    python bench/onsets.py --world /tmp/w64 --world /tmp/w224 --explain out.json  # where the false detections lie
    python bench/onsets.py --table out.json                  # that run's table again, with 95 % intervals

Worlds are the ``tiny`` preset's (40 videos x 12 events, seed 0) at each ``--sizes`` (``world.size``),
cached under ``<data root>/world/`` like the main job's. For every video ``detect_onsets`` runs on the
mp4 alone (no audio, no annotation) and its onsets are matched one-to-one to the annotated contact
times of ``<id>_physics.json`` (frames differ by <= 1). Rows per category: isolated hits, close double
hits (0.10-0.24 s from a neighbour), scratches; [95 % intervals] resample videos (2000 draws). Targets: precision and recall >= 0.9, median |error|
<= 17 ms (half a frame at 29.97 fps). The last column block is the detector's cost as a share of the
video's duration (real-time factor; one process, so compare the two sizes within one run).

``--explain`` reads a previous ``--json`` and, for each world, counts the false detections that lie
within 2 frames of a camera cut to another object or of the world's stick *jumping* between two rest
poses (the renderer switches the stick to the next event's pose in one frame, which no real take
does). It re-plans the videos with ``physdiff.world`` (scene + renderer internals of today's world).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import physdiff  # noqa: E402,F401  (sets OMP_WAIT_POLICY before torch loads OpenMP)


def world_for(size: int, videos: int | None, data_root: str | None) -> Path:
    from physdiff.config import resolve_config
    from physdiff.world.generate import ensure_world

    overrides = [f"world.size={size}"] + ([f"paths.data_root={data_root}"] if data_root else [])
    cfg = resolve_config("tiny", overrides)
    out, summary = ensure_world(cfg, progress=False)
    print(f"world {size} px: {'generated' if summary else 'cached'} {out}", flush=True)
    return out


def explain(reports: dict, worlds: list[Path]) -> None:
    """False detections near the world's cuts and stick jumps (see the module docstring)."""
    import numpy as np

    from physdiff.onsets.evaluate import match, truth_events
    from physdiff.world.config import WorldConfig
    from physdiff.world.render import Renderer, _tip_and_pivot, stick_pose
    from physdiff.world.generate import video_ids
    from physdiff.world.scene import plan_video
    from physdiff.world.sites import catalogue, site_of_video

    for (name, rep), world in zip(reports.items(), worlds):
        w = WorldConfig(**json.loads((world / "config.json").read_text())["world"])
        ids = [f"{vid}_denoised.mp4" for vid in video_ids(w.videos, w.seed)]  # generation order: video i
        sites = catalogue(w).sites
        total = near_cut = near_jump = either = 0
        for v in rep["videos"]:
            i = ids.index(v["video"])
            # the same draws as physdiff.world.generate.make_video: video i at its site, streams (seed, i, 0 / 2)
            plan = plan_video(w, sites[site_of_video(w.seed, i, w.sites)], np.random.default_rng([w.seed, i, 0]))
            r = Renderer(plan, w.size, w.fps, np.random.default_rng([w.seed, i, 2]))
            n = r.num_frames
            shot = [plan.events[r.shot(k / r.fps)].obj for k in range(n)]
            cuts = [k for k in range(n - 1) if shot[k] != shot[k + 1]]
            gov, tips = [], []
            for k in range(n):
                e, h = stick_pose(plan.events, k / r.fps)
                gov.append(plan.events.index(e))
                tips.append(_tip_and_pivot(e, h, k / r.fps, w.size)[0] / w.size)
            jumps = [k for k in range(n - 1) if gov[k] != gov[k + 1] and np.linalg.norm(tips[k + 1] - tips[k]) > 0.05]
            truth, fps = truth_events(world / v["video"].replace("_denoised.mp4", "_physics.json"))
            if [round(e.time, 6) for e in plan.events] != [round(e.time_s, 6) for e in truth]:
                raise SystemExit(f"error: {v['video']}: its re-planned events differ from its _physics.json (the "
                                 "world's code changed since it was generated): regenerate the world")
            det = [o["time_s"] for o in v["onsets"]]
            matched = dict(match(det, [e.time_s for e in truth], fps))
            for j, t in enumerate(det):
                if j in matched:
                    continue
                f = t * fps
                c = any(abs(f - (k + 0.5)) <= 2.5 for k in cuts)
                jp = any(abs(f - (k + 0.5)) <= 2.5 for k in jumps)
                total, near_cut, near_jump, either = total + 1, near_cut + c, near_jump + jp, either + (c or jp)
        a = rep["summary"]["all"]
        rest = a["detections"] - either
        print(f"{name}: {total} false detections; {near_cut} within 2 frames of a cut to another object, {near_jump} of a "
              f"stick jump between rest poses ({either} either); precision without those: "
              f"{(rest - (total - either)) / max(rest, 1):.3f}")


def main(argv: list[str] | None = None) -> int:
    from physdiff.onsets.detect import DetectorSettings
    from physdiff.onsets.evaluate import evaluate_world, format_table

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="64,224", help="world.size values of the tiny world to generate / reuse")
    ap.add_argument("--world", action="append", default=[], help="an existing world folder (instead of --sizes)")
    ap.add_argument("--videos", type=int, default=None, help="first N videos of each world (default: all)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--min-confidence", type=float, default=None)
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--json", default=None, help="write every video's onsets and scores here")
    ap.add_argument("--explain", default=None, help="a previous --json: attribute its false detections (no detection run)")
    ap.add_argument("--table", default=None, help="a previous --json: print its table again, with intervals")
    args = ap.parse_args(argv)
    if args.explain:
        explain(json.loads(Path(args.explain).read_text()), [Path(w) for w in args.world])
        return 0
    if args.table:  # re-print a saved run's table (with video-bootstrap intervals), no detection
        from physdiff.onsets.evaluate import bootstrap_ci

        reports = json.loads(Path(args.table).read_text())
        for rep in reports.values():
            rep["ci"] = bootstrap_ci([v["scores"] for v in rep["videos"]])
        print(format_table(reports))
        return 0

    worlds = [Path(w) for w in args.world] or [world_for(int(s), args.videos, args.data_root)
                                               for s in args.sizes.split(",") if s]
    settings = DetectorSettings()
    if args.min_confidence is not None:
        settings.min_confidence = args.min_confidence
    reports = {}
    for w in worlds:
        size = json.loads(next(w.glob("*_physics.json")).read_text())["size"]
        rep = evaluate_world(w, settings, videos=args.videos, workers=args.workers)
        seconds = sum(v["seconds"] for v in rep["videos"])
        duration = sum(json.loads((w / v["video"].replace("_denoised.mp4", "_physics.json")).read_text())["duration_s"]
                       for v in rep["videos"])
        rep["realtime_factor"] = seconds / duration
        reports[f"{size} px ({len(rep['videos'])} videos)"] = rep
        print(f"{w}: {len(rep['videos'])} videos, detector {seconds:.1f} s for {duration:.1f} s of video "
              f"(x{seconds / duration:.2f} real time)", flush=True)
    print()
    print(format_table(reports))
    print()
    for name, rep in reports.items():
        a = rep["summary"]["all"]
        ok = a["precision"] >= 0.9 and a["recall"] >= 0.9 and a["median_ms"] <= 17.0
        print(f"{name}: precision {a['precision']:.3f}, recall {a['recall']:.3f}, median error {a['median_ms']:.1f} ms, "
              f"x{rep['realtime_factor']:.2f} real time -> {'meets' if ok else 'MISSES'} the targets (>= 0.9, >= 0.9, <= 17 ms)")
    if args.json:
        Path(args.json).write_text(json.dumps(reports, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    from physdiff.errors import run_cli

    run_cli(lambda: main(sys.argv[1:]))
