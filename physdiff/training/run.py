"""Run one training stage in this process: the function every launcher path ends in.

    train_stage(cfg, "prior")                              # library use, Ray Tune trainables
    python -m physdiff.training.run --stage prior --preset debug          # one process (GPU or CPU)
    torchrun --standalone --nproc_per_node 2 -m physdiff.training.run --stage prior --preset debug --cpu
    python -m physdiff.training.run --stage prior --config runs/prior-abc/launch.json   # a resolved config

``cluster/launch.py`` is the front door; it reaches this module through torchrun (``--cpu --procs K``),
through submitit on SLURM (:mod:`physdiff.training.cluster_job`) or directly (``--local``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from physdiff.training.signals import StopFlag
from physdiff.training.trainer import ReportFn, StageResult, StopFn, train


def train_stage(
    cfg: Any,
    stage: str = "prior",
    *,
    report_fn: ReportFn | None = None,
    stop_fn: StopFn | None = None,
    stop_flag: StopFlag | None = None,
    cpu: bool | None = None,
) -> StageResult:
    """Train a registered stage under ``cfg`` (resuming its run folder) and return its result.

    ``report_fn(metrics, checkpoint_dir)`` is called on rank 0 after every epoch (Ray Tune's
    ``tune.report`` hook); ``stop_fn()`` returning True stops at the next step boundary with a
    checkpoint (status "stopped"); the run then resumes where it stopped when called again.
    """
    from physdiff.stages import get_recipe

    return train(cfg, get_recipe(stage), report_fn=report_fn, stop_fn=stop_fn, stop_flag=stop_flag, cpu=cpu)


def result_json(r: StageResult) -> str:
    return json.dumps({"stage": r.stage, "status": r.status, "run_dir": str(r.run_dir), "run_hash": r.run_hash,
                       "step": r.step, "epoch": r.epoch, "mlflow_run_id": r.mlflow_run_id,
                       "metrics": r.metrics, "exports": r.exports}, default=str)


def main(argv: list[str] | None = None) -> int:
    from physdiff.config import Config, add_config_args, config_from_args

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", default="prior")
    ap.add_argument("--config", help="a resolved config JSON (as written by cluster/launch.py); overrides still apply")
    ap.add_argument("--cpu", action="store_true", help="force CPU (gloo) even when GPUs are visible")
    add_config_args(ap)
    args = ap.parse_args(argv)
    if args.config:
        from physdiff.config import apply_overrides

        cfg = Config.from_json(args.config)
        apply_overrides(cfg, list(args.overrides))
    else:
        cfg = config_from_args(args)
    if args.cpu:
        os.environ["PHYSDIFF_CPU"] = "1"
    result = train_stage(cfg, args.stage, cpu=True if args.cpu else None)
    if int(os.environ.get("RANK", "0")) == 0:
        print("PHYSDIFF_RESULT " + result_json(result), flush=True)
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    from physdiff.errors import run_cli

    sys.exit(run_cli(main))
