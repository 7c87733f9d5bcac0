"""``launch.py --stage all``: the whole pipeline in order, skipping stages already complete for this config.

    synth  -> <data>/world/<hash>   (shards/synth.py; complete when its train.txt and test.txt exist)
    shards -> <data>/shards/<hash>  (shards/build.py; complete when summary.json exists)
    then every registered training stage in registry order (prior, video, diffusion, ...;
    complete when its run folder holds DONE.json), each through the same launch path.

``--local`` runs the training stages in this process; ``--cpu --procs K`` through torchrun.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _script_args(args: Any, cfg: Any) -> list[str]:
    extra = [f"seed={cfg.seed}"] if not any(o.startswith("seed=") for o in args.overrides) else []
    return ["--preset", args.preset, *args.overrides, *extra]


def _run(cmd: list[str], what: str, cfg: Any) -> None:
    from physdiff.errors import PhysdiffError

    print(f"[all] {what}: {' '.join(cmd)}", flush=True)
    env = None
    if cfg.paths.data_root:
        import os

        env = dict(os.environ, PHYSDIFF_DATA=str(cfg.paths.root()))
    rc = subprocess.call(cmd, env=env)
    if rc != 0:
        raise PhysdiffError(f"stage {what} failed (exit {rc}); see its output above")


def run_pipeline(args: Any, cfg: Any, argv: list[str]) -> Any:
    from launch import Launch, launch

    from physdiff.stages import shards_dir, stage_names, world_dir

    t0 = time.time()
    world, shards = world_dir(cfg), shards_dir(cfg)
    if (world / "train.txt").exists() and (world / "test.txt").exists():
        print(f"[all] synth: complete ({world})")
    else:
        _run([sys.executable, str(REPO / "shards/synth.py"), "--out", str(world), *_script_args(args, cfg)], "synth", cfg)
    if (shards / "summary.json").exists():
        print(f"[all] shards: complete ({shards})")
    else:
        _run([sys.executable, str(REPO / "shards/build.py"), "--source", str(world), "--out", str(shards),
              *_script_args(args, cfg)], "shards", cfg)
    # Re-launch each training stage with the same flags, stage name swapped.
    rest = list(argv)
    i = rest.index("--stage")
    last = None
    for name in stage_names():
        rest[i + 1] = name
        print(f"[all] {name} ({time.time() - t0:.0f} s elapsed)", flush=True)
        last = launch(rest)
        if last.returncode:
            return last
        if last.mode == "slurm":
            last.job.result()  # run the chain in order; dependent-job submission is issue [8/8]
    from physdiff.stages import task_stage_names

    for name in task_stage_names():  # index -> generate -> evaluate (each skips when already complete)
        rest[i + 1] = name
        print(f"[all] {name} ({time.time() - t0:.0f} s elapsed)", flush=True)
        last = launch(rest)
        if last.returncode:
            return last
        if last.mode == "slurm":
            last.job.result()
    print(f"[all] done in {time.time() - t0:.0f} s")
    return last or Launch("all", "all")
