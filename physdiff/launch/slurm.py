"""The one place physdiff talks to SLURM: submitit executors, job parameters, the training job, the dry-run script.

- :func:`slurm_parameters` turns the launcher's flags into submitit parameters (one task per GPU, or per
  CPU process with ``--cpu``; ``--after`` job ids become ``--dependency=afterok:...``);
- :func:`submit` submits any picklable callable (a training :class:`StageJob`, a data or task stage
  function) with those parameters; :func:`sbatch_text` renders the script it would submit;
- :class:`StageJob` is what every task of a training allocation runs. It derives the distributed
  environment from the SLURM variables (``submitit.helpers.TorchDistributedEnvironment``: rank, world
  size, rendezvous on the first node) and calls the engine.

Preemption and time limits follow submitit's checkpoint protocol, with one change: submitit's USR2 handler
would checkpoint immediately, inside whatever the task was doing. We install a flag-only handler instead;
the trainer agrees on the flag across ranks at the next step boundary and saves a checkpoint on every rank,
and only then does rank 0 hand over to submitit's original handler, which calls :meth:`StageJob.checkpoint`
(this same job again) and requeues the job. The requeued job finds the checkpoint in the run folder (named
by the config hash) and resumes; the MLflow run id stored there continues the same MLflow run.

Trust boundary: submitit pickles the submitted callable into ``<data>/jobs/<name>/<job id>/`` and the SLURM
task unpickles it. That folder is written by the submitting user, under the data folder only that user
writes to; physdiff never unpickles a file it did not just write itself in the same job folder.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable

from physdiff.training.signals import REQUEUE, StopFlag

SIGNAL_DELAY_S = 120  # USR2 two minutes before the limit: time to reach a step boundary and save


def dependency(after: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Job ids -> sbatch ``--dependency=afterok:1:2``; dependants of a failed job are cancelled, not left pending."""
    ids = [str(i).strip() for i in after if str(i).strip()]
    return {"slurm_additional_parameters": {"dependency": "afterok:" + ":".join(ids), "kill-on-invalid-dep": "yes"}} if ids else {}


def slurm_parameters(args: Any, cfg: Any, name: str, *, tasks: str = "train", after: list[str] | tuple[str, ...] = ()
                     ) -> dict[str, Any]:
    """submitit parameters for a job named ``physdiff-<name>``.

    ``tasks="train"``: ``--nodes`` x (``--gpus`` GPUs, or ``--procs`` CPU processes with ``--cpu``), one task
    each; ``tasks="one"``: a single task (data and task stages), on one GPU unless ``--cpu``.
    """
    cpu = bool(getattr(args, "cpu", False))
    params: dict[str, Any] = {"name": f"physdiff-{name}", "timeout_min": args.time, "stderr_to_stdout": False}
    if tasks == "train":
        params.update(nodes=args.nodes, tasks_per_node=args.procs if cpu else args.gpus,
                      slurm_signal_delay_s=SIGNAL_DELAY_S)
        if not cpu:
            params["gpus_per_node"] = args.gpus
            params["cpus_per_task"] = args.cpus_per_task or max(1, cfg.loader.num_workers + 1)
        elif args.cpus_per_task:
            params["cpus_per_task"] = args.cpus_per_task
    else:
        params.update(nodes=1, tasks_per_node=1)
        if not cpu and args.gpus:
            params["gpus_per_node"] = 1  # generation and evaluation run on one device
        params["cpus_per_task"] = args.cpus_per_task or max(1, cfg.shards.workers, cfg.world.workers)
    if args.partition:
        params["slurm_partition"] = args.partition
    params.update(dependency(after))
    return params


def job_folder(cfg: Any, name: str) -> Path:
    """``<data>/jobs/<name>``: submitit's pickles and per-task logs (one sub-folder per job id)."""
    return cfg.paths.root() / "jobs" / name


def _executor(folder: Path, params: dict[str, Any], feature: str = "physdiff launch on SLURM") -> Any:
    # Every submission, job array and sbatch script comes through here: one place names the extra.
    from physdiff.extras import require

    submitit = require("submitit", extra="cluster", feature=feature)
    ex = submitit.AutoExecutor(folder=folder / "%j", cluster="slurm")
    ex.update_parameters(**params)
    return ex


def array_executor(folder: Path, params: dict[str, Any]) -> Any:
    """A submitit executor for job arrays (``map_array``), e.g. the shard build's one task per group of videos."""
    return _executor(folder, params, feature="physdiff shards --slurm")


def submit(fn: Callable[..., Any], folder: Path, params: dict[str, Any], *args: Any) -> Any:
    """Submit ``fn(*args)`` as a SLURM job with ``params``; returns the submitit Job."""
    return _executor(folder, params).submit(fn, *args)


def sbatch_text(folder: Path, params: dict[str, Any]) -> str:
    """The exact sbatch script submitit would submit for ``params`` (nothing is submitted or written).

    submitit has no public call that renders its script; this uses its own renderer so the text is the
    one a real submission writes (``tests/pipeline`` compares the two on the local SLURM).
    """
    inner = _executor(folder, params)._executor
    return inner._make_submission_file_text(inner._submitit_command_str, "dry-run")


# ----------------------------------------------------------------------------- the training job


class StageJob:
    """Picklable callable run by every SLURM task of a training allocation (submitit ships it by reference)."""

    def __init__(self, cfg_dict: dict[str, Any], stage: str, cpu: bool = False) -> None:
        self.cfg_dict = cfg_dict
        self.stage = stage
        self.cpu = cpu

    def __call__(self) -> dict[str, Any]:
        import submitit

        from physdiff.config import Config, from_dict
        from physdiff.launch.worker import result_json
        from physdiff.stages import train_stage

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

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """submitit's requeue hook: the state lives in the run folder, so resubmit the same job."""
        import submitit

        return submitit.helpers.DelayedSubmission(StageJob(self.cfg_dict, self.stage, self.cpu))


def run_function_job(name: str, cfg_dict: dict[str, Any]) -> dict[str, Any]:
    """What a data or task stage's SLURM job runs: the stage function on the job's config."""
    from physdiff.config import Config, from_dict
    from physdiff.stages import run_function_stage

    return run_function_stage(name, from_dict(Config, cfg_dict))
