"""One training process: what torchrun and ``slurm/train.sbatch`` start on every rank.

    python -m physdiff.launch.worker --stage prior --config runs/prior-abc/launch-config.json --cpu
    torchrun --standalone --nproc_per_node 2 -m physdiff.launch.worker --stage prior --preset debug --cpu

It resolves the config (a resolved JSON, or a preset with overrides), trains the stage through the
engine (resuming its run folder) and prints one ``PHYSDIFF_RESULT {json}`` line on rank 0.
``physdiff launch`` is the front door; this module is the process it fans out to.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any


def result_json(r: Any) -> str:
    return json.dumps({"stage": r.stage, "status": r.status, "run_dir": str(r.run_dir), "run_hash": r.run_hash,
                       "step": r.step, "epoch": r.epoch, "mlflow_run_id": r.mlflow_run_id,
                       "metrics": r.metrics, "exports": r.exports}, default=str)


def main(argv: list[str] | None = None) -> int:
    from physdiff.config import add_config_args, config_from_args
    from physdiff.stages import stage_names, train_stage

    ap = argparse.ArgumentParser(prog="python -m physdiff.launch.worker", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", required=True, choices=stage_names("train"), help="the training stage to run")
    ap.add_argument("--cpu", action="store_true", help="force the CPU (gloo) even when GPUs are visible")
    add_config_args(ap)
    args = ap.parse_args(argv)
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

    run_cli(lambda: main(sys.argv[1:]))
