"""Is material recognisable in the generated world? The issue-15 targets, measured on the README main job's world.

    python bench/world_recognisability.py --data-root /tmp/wr                       # tiny world, all measurements
    python bench/world_recognisability.py --data-root /tmp/wr world.unseen_sites=0.25
    python bench/world_recognisability.py --data-root /tmp/wr --no-video            # skip the video stage (~5-10 min)

On the ``tiny`` preset's world (``world.*`` overrides apply), with the pipeline's own code:

1. the world (``shards/synth.py``'s ``ensure_world``) and its shards (``build_shards``);
2. the video stage (``cluster/launch.py --stage video --local``, skipped when its run is complete): its
   held-out accuracy, and nu-retrieval (the nearest training clip by the exported nu) returning the
   same object / the same material (:func:`physdiff.world.truth.retrieval_agreement`);
3. the evaluate stage's metric classifier (``physdiff.stages.evaluate.train_classifier``) trained two ways,
   ``eval.classifier_world_videos=0`` (this world's training split) and ``=N`` (an independent world of
   N videos, ``world.seed = eval.classifier_world_seed``, sharing this world's site catalogue), each
   scoring the test split's *real* recordings (the report's ground_truth row);
4. the independent probe (:mod:`physdiff.world.probe`: log-mel statistics + logistic regression), trained
   on each of the same two training sets.

Prints one table and writes ``<data root>/world_recognisability-<overrides>.json``. Test clips are split into
seen / held-out sites and objects struck / not struck by this world's training videos.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import physdiff  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads OpenMP)
import torch

REPO = Path(__file__).resolve().parents[1]


def score_real_test(cfg: Any, model: torch.nn.Module, truth: dict) -> dict[str, Any]:
    """The metric classifier on the test split's real recordings: overall and per subset of clips."""
    from physdiff.data.reader import make_loader
    from physdiff.eval.metrics import classification_metrics
    from physdiff.physics import spectrogram_target
    from physdiff.stages import shards_dir

    keys, logits, labels = [], [], []
    with torch.no_grad():
        for b in make_loader(shards_dir(cfg), "test", batch_size=64, mode="eval"):
            out, _ = model(spectrogram_target(b["audio"].float(), cfg.audio))  # (B, K)
            logits.append(out)
            labels.append(b["material"].long())
            keys.extend(str(k) for k in b["key"])
    lg, lb = torch.cat(logits), torch.cat(labels)
    subsets = {"all": [True] * len(keys), "seen_site": [not truth[k].held_out_site for k in keys],
               "unseen_site": [truth[k].held_out_site for k in keys],
               "object_in_train": [truth[k].object_in_train for k in keys],
               "object_not_in_train": [not truth[k].object_in_train for k in keys]}
    res = {}
    for name, mask in subsets.items():
        m = torch.tensor(mask)
        if m.any():
            s = classification_metrics(lg[m], lb[m])
            res[name] = {"clips": int(m.sum()), "acc": s["acc"], "balanced_acc": s["balanced_acc"],
                         "chance_acc": s["chance_acc"], "chance_balanced_acc": s["chance_balanced_acc"]}
    return res


def classifier_world(cfg: Any) -> Path:
    """The folder of the independent classifier world (as physdiff.stages.evaluate.classifier_shards names it)."""
    import copy

    from physdiff.configlib import apply_overrides
    from physdiff.stages import world_dir

    e = cfg.eval
    wcfg = apply_overrides(copy.deepcopy(cfg), {"world.seed": e.classifier_world_seed,
                                                "world.videos": e.classifier_world_videos, "train.shards": ""})
    return world_dir(wcfg)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", type=Path, required=True)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--classifier-videos", type=int, default=200, help="videos of the independent classifier world")
    ap.add_argument("--no-video", action="store_true", help="skip the video stage and nu-retrieval")
    ap.add_argument("overrides", nargs="*", help="section.key=value")
    args = ap.parse_args()

    from physdiff.config import resolve_config
    from physdiff.data.build import build_shards
    from physdiff.stages import shards_dir, world_dir
    from physdiff.stages.evaluate import train_classifier
    from physdiff.world.generate import ensure_world
    from physdiff.world.probe import run_probe
    from physdiff.world.truth import clip_truth, retrieval_agreement

    common = [f"paths.data_root={args.data_root}", "tracking.enabled=false", "world.workers=2", "shards.workers=2",
              *args.overrides]
    cfg = resolve_config(args.preset, common)
    out: dict[str, Any] = {"preset": args.preset, "overrides": args.overrides, "seconds": {}}
    t0 = time.time()
    world, _ = ensure_world(cfg, world_dir(cfg), progress=False)
    if not (shards_dir(cfg) / "summary.json").is_file():
        build_shards(world, shards_dir(cfg), cfg, workers=2)
    out["seconds"]["world_and_shards"] = round(time.time() - t0, 1)
    out["summary"] = {k: v for k, v in json.loads((world / "summary.json").read_text()).items() if k not in ("train", "test")}
    truth = clip_truth(world, cfg.audio.sample_rate)

    if not args.no_video:
        from physdiff.stages import stage_run_dir
        from physdiff.stages.video import export_paths

        run = stage_run_dir(cfg, "video")
        t0 = time.time()
        if not (run / "DONE.json").is_file():
            cmd = [sys.executable, str(REPO / "cluster/launch.py"), "--stage", "video", "--local", "--preset", args.preset,
                   *common]
            subprocess.run(cmd, check=True, cwd=REPO)
        out["seconds"]["video"] = round(time.time() - t0, 1)
        val = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if '"val/acc"' in line]
        out["video_done"] = {k: v for k, v in val[-1].items() if k.startswith("val/") or k in ("step", "epoch")}
        from physdiff.data.sidetable import read_side_table

        paths = export_paths(run)
        tr, te = read_side_table(paths["train"]), read_side_table(paths["test"])
        out["retrieval"] = retrieval_agreement(te.keys, te.arrays["nu"], tr.keys, tr.arrays["nu"], truth)

    out["classifier"], out["probe"] = {}, {}
    for n in sorted({0, args.classifier_videos}):
        ccfg = resolve_config(args.preset, common + [f"eval.classifier_world_videos={n}"])
        t0 = time.time()
        model, info = train_classifier(ccfg, torch.device("cpu"), progress=False)
        name = "this_world" if n == 0 else f"classifier_world_{n}"
        out["classifier"][name] = {"train_clips": info.get("train_clips"), "train_acc": info.get("train_acc"),
                                   **score_real_test(ccfg, model.eval(), truth)}
        out["seconds"][f"classifier_{name}"] = round(time.time() - t0, 1)
        t0 = time.time()
        train_world = None if n == 0 else classifier_world(ccfg)
        p = run_probe(world, train_world, cfg.audio.sample_rate)
        out["probe"][name] = {"train": p["train"], "all": p["test"], **p["subsets"]}
        out["seconds"][f"probe_{name}"] = round(time.time() - t0, 1)

    def pct(x: float) -> str:
        return "n/a" if x != x else f"{100 * x:.1f}"

    print(f"\nworld {world} ({out['summary']['videos']} videos, {out['summary']['sites']} sites, held out "
          f"{out['summary']['held_out_sites']}); objects struck {out['summary']['objects_struck']}")
    if "video_done" in out:
        print(f"video stage: {json.dumps(out['video_done'])}")
    print("| measurement | trained on | subset | clips | acc. % | bal. acc. % | chance acc. / bal. % |")
    print("|---|---|---|---|---|---|---|")
    for kind in ("classifier", "probe"):
        for name, rows in out[kind].items():
            for sub, s in rows.items():
                if isinstance(s, dict) and "acc" in s:
                    print(f"| {kind} | {name} | {sub} | {s['clips']} | {pct(s['acc'])} | {pct(s['balanced_acc'])} | "
                          f"{pct(s['chance_acc'])} / {pct(s['chance_balanced_acc'])} |")
    if "retrieval" in out:
        print("\n| nu-retrieval subset | clips | same object % | same material % | same site % |\n|---|---|---|---|---|")
        for sub, s in out["retrieval"].items():
            print(f"| {sub} | {s['clips']} | {pct(s['same_object'])} | {pct(s['same_material'])} | {pct(s['same_site'])} |")
    print(f"\nseconds: {out['seconds']}")
    from physdiff.fileio import atomic_write_json

    tag = "-".join(o.replace("=", "_") for o in args.overrides) or "default"
    atomic_write_json(args.data_root / f"world_recognisability-{tag}.json", out)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    from physdiff.errors import run_cli

    run_cli(main)
