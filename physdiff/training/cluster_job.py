"""The SLURM side of the launcher: a submitit job that trains a stage on every task of an allocation.

``cluster/launch.py`` submits ``StageJob(cfg_dict, stage, cpu)`` with one task per GPU (or per CPU
process). Each task derives its distributed environment from the SLURM variables
(``submitit.helpers.TorchDistributedEnvironment``: rank, world size, rendezvous on the first node
of the allocation) and calls :func:`physdiff.training.run.train_stage`.

Preemption and time limits follow submitit's checkpoint protocol, with one change: submitit's
USR2 handler would checkpoint immediately, inside whatever the task was doing. We install a flag-only
handler instead; the trainer agrees on the flag across ranks at the next step boundary and saves a
checkpoint on every rank, and only then does rank 0 hand over to submitit's original handler, which
calls :meth:`StageJob.checkpoint` (this same job again) and requeues the job. The requeued job finds
the checkpoint in the run folder (the run folder is named by the config hash) and resumes; the
MLflow run id stored there continues the same MLflow run.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

import submitit

from physdiff.training.signals import REQUEUE, StopFlag


class StageJob(submitit.helpers.Checkpointable):
    """Picklable callable run by every SLURM task (submitit ships it with cloudpickle, by reference)."""

    def __init__(self, cfg_dict: dict[str, Any], stage: str, cpu: bool = False) -> None:
        self.cfg_dict = cfg_dict
        self.stage = stage
        self.cpu = cpu

    def __call__(self) -> dict[str, Any]:
        from physdiff.config import Config, from_dict
        from physdiff.training.run import result_json, train_stage

        env = submitit.JobEnvironment()
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=not self.cpu)
        if self.cpu:
            os.environ["PHYSDIFF_CPU"] = "1"
        # Our flag-only handlers replace submitit's; submitit's USR2 handler is kept for the hand-over.
        flag = StopFlag().install((signal.SIGUSR2, signal.SIGTERM, signal.SIGUSR1))
        cfg = from_dict(Config, self.cfg_dict)
        print(f"[physdiff] {env} restart={os.environ.get('SLURM_RESTART_COUNT', '0')}", flush=True)
        result = train_stage(cfg, self.stage, stop_flag=flag, cpu=True if self.cpu else None)

        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        if result.status in ("requeue", "stopped"):
            print(f"[physdiff] stopped at step {result.step} by {flag.signals}; checkpoint saved", flush=True)
            if env.global_rank == 0:
                handler = flag.previous(signal.SIGUSR2)
                if result.status == "stopped" and flag.code < REQUEUE:
                    # SIGTERM first (submitit's preemption sends TERM then USR2): give USR2 a moment.
                    deadline = time.time() + 5.0
                    while flag.code < REQUEUE and time.time() < deadline:
                        time.sleep(0.1)
                if flag.code >= REQUEUE and handler is not None:
                    handler(signal.SIGUSR2, None)  # submitit: checkpoint() -> requeue -> exit
            # Not finished: leave without a result so the requeued job (or a relaunch) completes it.
            sys.exit(-1)
        out = {"stage": result.stage, "status": result.status, "run_dir": str(result.run_dir), "step": result.step,
               "epoch": result.epoch, "mlflow_run_id": result.mlflow_run_id, "metrics": result.metrics}
        if env.global_rank == 0:
            print("PHYSDIFF_RESULT " + result_json(result), flush=True)
        return out

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        """submitit's requeue hook: the state lives in the run folder, so resubmit the same job."""
        return submitit.helpers.DelayedSubmission(StageJob(self.cfg_dict, self.stage, self.cpu))
