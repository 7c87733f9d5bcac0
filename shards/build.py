"""Greatest Hits layout -> WebDataset shards with physics (issue [3/8]); sample format in shards/README.md.

    # the generated world (or the real dataset) -> shards, 2 local processes
    python shards/build.py --source data/world/debug --out data/shards/debug --workers 2 --preset debug
    # the paper subset of the real dataset at 224 px
    python shards/build.py --source /datasets/vis-data --out data/shards/gh --subset paper --workers 16
    # one SLURM array task per group of videos (submitit), then the manifest
    python shards/build.py --source DIR --out DIR --slurm --slurm-partition debug --slurm-time 60
    # any config override: section.key=value
    python shards/build.py --source DIR --out DIR shards.samples_per_shard=128 shards.jpeg_quality=95

A rerun resumes: finished tasks whose shards match their part record are not redone. Bad input
(unreadable media, bad annotation lines, onsets past the end, silent clips) is skipped and listed in
the split's manifest.json; ``--strict`` makes the first such skip an error naming the file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from physdiff.config import add_config_args, config_from_args
from physdiff.errors import run_cli


def main() -> int:
    from physdiff.data.build import build_shards, format_summary

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", required=True, type=Path, help="folder in the Greatest Hits layout")
    ap.add_argument("--out", required=True, type=Path, help="output folder (train/, test/, manifests)")
    ap.add_argument("--subset", choices=["paper", "all"], help="paper: hit+static, 10 materials; all: known materials")
    ap.add_argument("--workers", type=int, help="local worker processes (default: shards.workers)")
    ap.add_argument("--strict", action="store_true", help="turn every skip of bad input into an error naming the file")
    ap.add_argument("--overwrite", action="store_true", help="replace shards built from another config/source")
    ap.add_argument("--slurm", action="store_true", help="run the tasks as a SLURM job array through submitit")
    ap.add_argument("--slurm-partition", default=None)
    ap.add_argument("--slurm-time", type=int, default=60, help="minutes per array task")
    ap.add_argument("--slurm-cpus", type=int, default=1, help="CPUs per array task")
    ap.add_argument("--slurm-parallel", type=int, default=None, help="max array tasks running at once")
    add_config_args(ap)
    args = ap.parse_args()
    cfg = config_from_args(args, {"shards.subset": args.subset, "shards.workers": args.workers})
    slurm = None
    if args.slurm:
        slurm = {"partition": args.slurm_partition, "timeout_min": args.slurm_time,
                 "cpus_per_task": args.slurm_cpus, "max_parallel": args.slurm_parallel}

    def progress(part: dict) -> None:
        state = "reused" if part.get("reused") else f"{part['seconds']:.1f} s"
        print(f"task {part['task']}: {part['written']} written, {len(part['skipped'])} skipped ({state})", flush=True)

    summary = build_shards(args.source, args.out, cfg, strict=args.strict, overwrite=args.overwrite,
                           slurm=slurm, progress=progress)
    print(format_summary(summary))
    print(f"shards in {args.out} (manifests: {args.out}/train/manifest.json, {args.out}/test/manifest.json)")
    return 0


if __name__ == "__main__":
    run_cli(main)
