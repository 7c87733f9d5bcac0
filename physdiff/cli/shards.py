"""``physdiff shards``: a Greatest Hits layout folder -> WebDataset shards with physics (format: shards/README.md).

    # the generated world (or the real dataset) -> shards, 2 local processes
    physdiff shards --source data/world/debug --out data/shards/debug --workers 2 --preset debug
    # the paper subset of the real dataset at 224 px
    physdiff shards --source /datasets/vis-data --out data/shards/gh --subset paper --workers 16
    # one SLURM array task per group of videos (submitit), then the manifest
    physdiff shards --source DIR --out DIR --slurm --partition debug --time 60
    # any config override: section.key=value
    physdiff shards --source DIR --out DIR shards.samples_per_shard=128 shards.jpeg_quality=95

(``python shards/build.py ...`` is the same command.) Without ``--source`` / ``--out`` the world and shard
folders of the config in the data folder are used. A rerun resumes: finished tasks whose shards match
their part record are not redone. Bad input (unreadable media, bad annotation lines, onsets past the end,
silent clips) is skipped and listed in the split's manifest.json; ``--strict`` makes the first such skip
an error naming the file.
"""

from __future__ import annotations

from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from physdiff import identity
    from physdiff.cli.common import add_config_args, add_data_args, add_slurm_args, config_from_args, data_overrides, parser
    from physdiff.data.build import build_shards, format_summary

    ap = parser("physdiff shards", __doc__)
    ap.add_argument("--source", type=Path, default=None, help="folder in the Greatest Hits layout (default: the config's world)")
    ap.add_argument("--out", type=Path, default=None, help="output folder (train/, test/, manifests; default: the config's shard folder)")
    ap.add_argument("--subset", choices=["paper", "all"], help="paper: hit+static, 10 materials; all: known materials (shards.subset)")
    ap.add_argument("--workers", type=int, help="local worker processes (shards.workers)")
    ap.add_argument("--strict", action="store_true", help="turn every skip of bad input into an error naming the file")
    ap.add_argument("--overwrite", action="store_true", help="replace shards built from another config or source")
    ap.add_argument("--slurm", action="store_true", help="run the tasks as a SLURM job array through submitit")
    ap.add_argument("--max-parallel", "--slurm-parallel", dest="max_parallel", type=int, default=None,
                    help="SLURM: most array tasks running at once")
    add_slurm_args(ap, training=False)
    add_data_args(ap, tracking=False)
    add_config_args(ap)
    args = ap.parse_args(argv)
    cfg = config_from_args(args, {**data_overrides(args), "shards.subset": args.subset, "shards.workers": args.workers})
    source = args.source or identity.world_dir(cfg)
    out = args.out or identity.shards_dir(cfg)
    slurm = None
    if args.slurm:
        from physdiff.launch.slurm import array_executor

        params = {"timeout_min": args.time, "cpus_per_task": args.cpus_per_task or 1, "name": "physdiff-shards"}
        if args.partition:
            params["slurm_partition"] = args.partition
        if args.max_parallel:
            params["slurm_array_parallelism"] = args.max_parallel
        slurm = array_executor(out / "_slurm", params)

    def progress(part: dict) -> None:
        state = "reused" if part.get("reused") else f"{part['seconds']:.1f} s"
        print(f"task {part['task']}: {part['written']} written, {len(part['skipped'])} skipped ({state})", flush=True)

    summary = build_shards(source, out, cfg, strict=args.strict, overwrite=args.overwrite, slurm=slurm, progress=progress)
    print(format_summary(summary))
    print(f"shards in {out} (manifests: {out}/train/manifest.json, {out}/test/manifest.json)")
    return 0
