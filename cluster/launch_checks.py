"""``launch.py --dry-run``: the resolved config, the sbatch script submitit would submit, and checks.

Checks (each printed as OK / WARN / FAIL with the reason):
- data present: the shard manifests of the train and test splits exist for this config;
- shard count vs readers: at least nodes x tasks x loader workers shards, else some readers of the
  eval pass get no shard (training resamples shards, so it still runs, with repeated shards);
- output writable: the run folder's parent accepts a file;
- a GPU job asks for GPUs and a CPU job does not.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any


def checks(args: Any, cfg: Any, stage: str) -> list[tuple[str, str]]:
    from physdiff.stages import shards_dir

    out: list[tuple[str, str]] = []
    root = shards_dir(cfg)
    ranks = args.nodes * (args.procs if args.cpu else args.gpus)
    readers = ranks * max(1, cfg.loader.num_workers)
    for split in ("train", "test"):
        man = root / split / "manifest.json"
        if not man.exists():
            out.append(("FAIL", f"data: no shards for split '{split}' at {man} (run --stage all, or shards/build.py --out {root})"))
            continue
        m = json.loads(man.read_text())
        n = int(m.get("num_shards", len(m.get("shards", []))))
        msg = f"shards: {split} has {n} shard(s), {m.get('num_samples')} clips for {ranks} rank(s) x {max(1, cfg.loader.num_workers)} worker(s) = {readers} readers"
        out.append(("OK" if n >= readers else "WARN", msg + ("" if n >= readers else "; rebuild with smaller shards.samples_per_shard")))
    run_parent = cfg.paths.root() / "runs"
    try:
        run_parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=run_parent, prefix=".write-test-"):
            pass
        out.append(("OK", f"output: {run_parent} is writable"))
    except OSError as e:
        out.append(("FAIL", f"output: cannot write to {run_parent}: {e}"))
    if args.cpu:
        out.append(("OK", f"devices: {ranks} CPU process(es), gloo"))
    elif args.gpus < 1:
        out.append(("FAIL", "devices: --gpus 0 without --cpu"))
    else:
        out.append(("OK", f"devices: {args.nodes} node(s) x {args.gpus} GPU(s) = {ranks} rank(s), NCCL"))
    return out


def dry_run(args: Any, cfg: Any, stage: str) -> list[tuple[str, str]]:
    from launch import job_folder, sbatch_text, slurm_parameters

    from physdiff.stages import get_recipe
    from physdiff.training.trainer import run_dir_for, run_hash

    recipe = get_recipe(stage)
    rhash = run_hash(cfg, recipe)
    print("# resolved config")
    print(cfg.to_json())
    print(f"\n# run folder: {run_dir_for(cfg, recipe)}")
    params = slurm_parameters(args, cfg, stage)
    print(f"# submitit parameters: {json.dumps(params, sort_keys=True)}")
    print("\n# sbatch script")
    print(sbatch_text(job_folder(cfg, stage, rhash), params))
    print("# checks")
    res = checks(args, cfg, stage)
    for level, msg in res:
        print(f"{level:4s} {msg}")
    return res
