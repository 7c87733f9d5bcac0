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

Trust boundary. Three pickles cross the job folder (``<data>/jobs/<name>/<job id>/``, or ``<shards>/_slurm/``
for a shard build): the launcher pickles the submitted callable (``<id>_submitted.pkl``) and submitit's
entry point in the SLURM task unpickles it; on a requeue the task re-pickles the job there and the next
task unpickles that; and ``--wait`` (or the shard build) unpickles the task's ``<id>_<task>_result.pkl`` in
the launcher. submitit's task entry point unpickles before any physdiff code runs, so these files cannot
be signed like a sweep's (physdiff.sweeps.trust); instead the job folder is made private: created 0700,
and a submission is refused (:func:`private_job_folder`) when the folder or the one holding it belongs to
another user or is writable by group or others. Whoever can write a job folder can run code as you, in
your jobs and in your launcher: that is you and root, plus anyone who can rename folders in the data
folder above it, so keep the data folder writable by you alone (or by people you would give your account).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable

from physdiff.training.signals import REQUEUE, StopFlag

log = logging.getLogger(__name__)

SIGNAL_DELAY_S = 120  # USR2 two minutes before the limit: time to reach a step boundary and save


# Rendezvous ports are drawn below Linux's ephemeral range (32768-60999 by default), where any outgoing
# connection on the node may already hold the port: submitit's own default draws from 20000-60000, and two
# jobs of one pipeline on a shared node failed with EADDRINUSE on such a port (the Python 3.12 suite).
# slurm/train.sbatch uses the same rule, so every node of a job derives the same port from its id.
RENDEZVOUS_PORT_BASE, RENDEZVOUS_PORT_SPAN = 20000, 12000


def rendezvous_port(job_id: int) -> int:
    """MASTER_PORT of SLURM job ``job_id``: 20000 + id mod 12000 (the same on every node of the job)."""
    return RENDEZVOUS_PORT_BASE + int(job_id) % RENDEZVOUS_PORT_SPAN


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


def private_job_folder(folder: Path) -> Path:
    """Create ``folder`` 0700 (with its parents); refuse it, or its parent, when another user owns it or others can write it."""
    import stat

    from physdiff.errors import PhysdiffError

    folder = Path(folder)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for p in (folder, folder.parent):
        st = p.stat()
        if st.st_uid not in (os.getuid(), 0):
            raise PhysdiffError(f"refusing to submit through {folder}: {p} belongs to uid {st.st_uid}, not to you; "
                                "whoever can write there can run code in your jobs (submitit pickles)")
        if st.st_mode & 0o022 and not (p == folder.parent and st.st_mode & stat.S_ISVTX):
            raise PhysdiffError(f"refusing to submit through {folder}: {p} is writable by group or others "
                                f"(mode {stat.S_IMODE(st.st_mode):o}); whoever can write there can run code in your jobs "
                                f"(submitit pickles). chmod go-w {p}")
    return folder


def _executor(folder: Path, params: dict[str, Any], *, submitting: bool = True,
              feature: str = "physdiff launch on SLURM") -> Any:
    # Every submission, job array and sbatch script comes through here: one place names the extra.
    from physdiff.extras import require

    submitit = require("submitit", extra="cluster", feature=feature)
    if submitting:
        private_job_folder(folder)
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
    inner = _executor(folder, params, submitting=False)._executor  # a dry run creates nothing
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
        own_port = "MASTER_PORT" in os.environ  # exported by the user: submitit keeps (or refuses) it
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=not self.cpu)
        if not own_port and os.environ.get("SLURM_JOB_ID", "").isdigit():
            # after export (it refuses a MASTER_PORT already set): ours instead of its random draw, see rendezvous_port
            os.environ["MASTER_PORT"] = str(rendezvous_port(int(os.environ["SLURM_JOB_ID"])))
        if self.cpu:
            os.environ["PHYSDIFF_CPU"] = "1"
        # Our flag-only handlers replace submitit's; submitit's USR2 handler is kept for the hand-over.
        from physdiff.logs import setup_logging

        setup_logging()  # a submitit job is an entry point of its own
        flag = StopFlag().install((signal.SIGUSR2, signal.SIGTERM, signal.SIGUSR1))
        cfg = from_dict(Config, self.cfg_dict)
        log.info(f"[physdiff] {env} restart={os.environ.get('SLURM_RESTART_COUNT', '0')}")
        result = train_stage(cfg, self.stage, stop_flag=flag, cpu=True if self.cpu else None)

        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        if result.status in ("requeue", "stopped"):
            log.info(f"[physdiff] stopped at step {result.step} by {flag.signals}; checkpoint saved")
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
