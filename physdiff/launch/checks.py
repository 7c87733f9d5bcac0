"""``physdiff launch --dry-run``: the checks printed beside the config and the sbatch script.

Each is OK / WARN / FAIL with the reason; none writes anything (a dry run is dry):
- data present: the shard manifests of the train and test splits exist for this config;
- shard count vs readers: at least nodes x tasks x loader workers shards, else some readers of the
  eval pass get no shard (training resamples shards, so it still runs, with repeated shards);
- output writable: the run folder's nearest existing parent accepts new files (``os.access``);
- a GPU job asks for GPUs and a CPU job does not.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def checks(args: Any, cfg: Any, stage: str) -> list[tuple[str, str]]:
    from physdiff.identity import shards_dir

    out: list[tuple[str, str]] = []
    root = shards_dir(cfg)
    ranks = args.nodes * (args.procs if args.cpu else args.gpus)
    readers = ranks * max(1, cfg.loader.num_workers)
    for split in ("train", "test"):
        man = root / split / "manifest.json"
        if not man.exists():
            out.append(("FAIL", f"data: no shards for split '{split}' at {man} (run --stage all, or "
                                f"physdiff shards --out {root})"))
            continue
        m = json.loads(man.read_text())
        n = int(m.get("num_shards", len(m.get("shards", []))))
        msg = (f"shards: {split} has {n} shard(s), {m.get('num_samples')} clips for {ranks} rank(s) x "
               f"{max(1, cfg.loader.num_workers)} worker(s) = {readers} readers")
        out.append(("OK" if n >= readers else "WARN", msg + ("" if n >= readers else "; rebuild with smaller shards.samples_per_shard")))
    run_parent = cfg.paths.root() / "runs"
    where = _nearest_existing(run_parent)
    if where.is_dir() and os.access(where, os.W_OK | os.X_OK):
        out.append(("OK", f"output: {run_parent} is writable"))
    else:
        out.append(("FAIL", f"output: cannot write to {run_parent} ({where} is not a writable folder)"))
    if args.cpu:
        out.append(("OK", f"devices: {ranks} CPU process(es), gloo"))
    elif args.gpus < 1:
        out.append(("FAIL", "devices: --gpus 0 without --cpu"))
    else:
        out.append(("OK", f"devices: {args.nodes} node(s) x {args.gpus} GPU(s) = {ranks} rank(s), NCCL"))
    return out


def dry_run(args: Any, cfg: Any, stage: str) -> list[tuple[str, str]]:
    """Print the resolved config, the run folder, the submitit parameters, the sbatch script and the checks."""
    from physdiff.launch.slurm import job_folder, sbatch_text, slurm_parameters
    from physdiff.stages import stage_run_dir

    run_dir = stage_run_dir(cfg, stage)
    print("# resolved config")
    print(cfg.to_json())
    print(f"\n# run folder: {run_dir}")
    params = slurm_parameters(args, cfg, stage, after=[a for a in (args.after or "").split(",") if a])
    print(f"# submitit parameters: {json.dumps(params, sort_keys=True)}")
    print("\n# sbatch script")
    print(sbatch_text(job_folder(cfg, run_dir.name), params))
    print("# checks")
    res = checks(args, cfg, stage)
    for level, msg in res:
        print(f"{level:4s} {msg}")
    return res
