"""Audit a generated world: where it was filmed, how objects recur, and whether its sound carries material.

    python -m physdiff.world.audit data/world/tiny-s0-...                          # recurrence + probe
    python -m physdiff.world.audit WORLD --train-world CLASSIFIER_WORLD            # probe trained on another world
    python -m physdiff.world.audit WORLD --video-export data/runs/video-<hash>/export --sample-rate 16000
    python -m physdiff.world.audit WORLD --json out.json

Prints (and with ``--json`` writes) the videos per site, how many test objects training videos also
struck, the log-mel + logistic-regression probe (:mod:`physdiff.world.probe`) on the test recordings,
and with ``--video-export`` how often nu-retrieval returns the same object / material
(:func:`physdiff.world.truth.retrieval_agreement`). ``--sample-rate`` must be the shards'
``audio.sample_rate`` (16000 in ``tiny``) for the keys of the video export to match.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from physdiff.errors import DataError, run_cli


def recurrence(world_dir: Path) -> dict[str, Any]:
    """Videos per site and split, objects struck per split, from the world's sites.json."""
    path = world_dir / "sites.json"
    if not path.is_file():
        raise DataError(f"missing {path}: not a world with a site catalogue")
    sites = json.loads(path.read_text())
    train = {o for s in sites["sites"] for o in s["struck"]["train"]}
    test = {o for s in sites["sites"] for o in s["struck"]["test"]}
    return {"sites": len(sites["sites"]), "held_out": sites["held_out"],
            "videos": {s["id"]: {sp: len(v) for sp, v in s["videos"].items()} for s in sites["sites"]},
            "objects_struck_train": len(train), "objects_struck_test": len(test),
            "test_objects_also_in_train": len(test & train)}


def retrieval(world_dir: Path, export: Path, sample_rate: int) -> dict[str, Any]:
    """nu-retrieval agreement of the video export's test clips against its training clips."""
    from physdiff.data.sidetable import read_side_table
    from physdiff.world.truth import clip_truth, retrieval_agreement

    tr, te = read_side_table(export / "video-train.safetensors"), read_side_table(export / "video-test.safetensors")
    return retrieval_agreement(te.keys, te.arrays["nu"], tr.keys, tr.arrays["nu"], clip_truth(world_dir, sample_rate))


def _pct(x: float) -> str:
    return "  n/a" if x != x else f"{100 * x:5.1f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("world", type=Path, help="a generated world folder")
    ap.add_argument("--train-world", type=Path, default=None, help="train the probe on this world's training split")
    ap.add_argument("--video-export", type=Path, default=None, help="a video run's export/ folder (nu side tables)")
    ap.add_argument("--sample-rate", type=int, default=16000, help="the shards' audio.sample_rate (clip keys)")
    ap.add_argument("--no-probe", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)
    out: dict[str, Any] = {"world": str(args.world), "recurrence": recurrence(args.world)}
    rec = out["recurrence"]
    print(f"{rec['sites']} sites (held out: {', '.join(rec['held_out']) or 'none'}); objects struck: train "
          f"{rec['objects_struck_train']}, test {rec['objects_struck_test']} ({rec['test_objects_also_in_train']} "
          f"also in training videos)")
    if not args.no_probe:
        from physdiff.world.probe import run_probe

        p = run_probe(args.world, args.train_world, args.sample_rate)
        out["probe"] = p
        print(f"probe (log-mel stats + logistic regression, trained on {p['train_world']}):")
        for name, s in [("train", p["train"]), ("test", p["test"])] + list(p["subsets"].items()):
            print(f"  {name:20s} clips {s['clips']:5d}  acc {_pct(s['acc'])} %  balanced {_pct(s['balanced_acc'])} %"
                  f"  (chance {_pct(s['chance_acc'])} / {_pct(s['chance_balanced_acc'])} %)")
    if args.video_export is not None:
        r = retrieval(args.world, args.video_export, args.sample_rate)
        out["retrieval"] = r
        print("nu-retrieval (nearest training clip by the video export's nu):")
        for name, s in r.items():
            print(f"  {name:20s} clips {s['clips']:5d}  same object {_pct(s['same_object'])} %  same material "
                  f"{_pct(s['same_material'])} %  same site {_pct(s['same_site'])} %")
    if args.json is not None:
        from physdiff.fileio import atomic_write_json

        atomic_write_json(args.json, out)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    run_cli(main)
