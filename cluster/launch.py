"""The front door on a cluster: train a stage on one GPU, many GPUs, many nodes, or CPU processes.

    python cluster/launch.py --stage prior --gpus 8                       # SLURM via submitit, 1 node x 8 GPUs
    python cluster/launch.py --stage prior --gpus 8 --nodes 4 --partition gpu --time 1440
    python cluster/launch.py --stage prior --local --preset debug          # this process, one GPU or the CPU
    python cluster/launch.py --stage prior --cpu --procs 2 --preset debug  # 2 local gloo processes (torchrun)
    python cluster/launch.py --stage prior --cpu --procs 2 --slurm         # 2 CPU tasks on SLURM
    python cluster/launch.py --stage prior --gpus 8 --nodes 2 --dry-run    # print config, sbatch script, checks
    python cluster/launch.py --stage all --local --preset tiny             # synth -> shards -> prior -> ...

Trailing ``section.key=value`` overrides and ``--preset`` resolve the config (see physdiff.config);
``--tracking-uri`` points MLflow elsewhere (default: SQLite in the data folder). The run folder is
``<data>/runs/<stage>-<config hash>``: launching the same config again resumes it (or skips it
when finished); a preempted SLURM job checkpoints, requeues itself and resumes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "cluster"))

from physdiff.config import add_config_args, config_from_args  # noqa: E402
from physdiff.errors import PhysdiffError, run_cli  # noqa: E402


@dataclass
class Launch:
    """What a launch did: the mode, the run folder, and the SLURM job / process result when any."""

    mode: str
    stage: str
    run_dir: Path | None = None
    job: Any = None  # submitit Job (SLURM mode)
    job_folder: Path | None = None
    returncode: int = 0
    mlflow_run_id: str | None = None
    result: Any = None


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", required=True, help="a training stage (prior, ...) or 'all' for the whole pipeline")
    ap.add_argument("--gpus", type=int, default=1, help="GPUs (= tasks) per node (SLURM mode)")
    ap.add_argument("--nodes", type=int, default=1)
    ap.add_argument("--partition", default=None)
    ap.add_argument("--time", type=int, default=24 * 60, help="time limit in minutes (SLURM mode)")
    ap.add_argument("--cpus-per-task", type=int, default=None)
    ap.add_argument("--local", action="store_true", help="run in this process (one GPU or the CPU)")
    ap.add_argument("--cpu", action="store_true", help="CPU processes with gloo (with --procs); local unless --slurm")
    ap.add_argument("--procs", type=int, default=1, help="CPU processes per node (with --cpu)")
    ap.add_argument("--slurm", action="store_true", help="with --cpu: submit the CPU processes to SLURM")
    ap.add_argument("--dry-run", action="store_true", help="print the config, the sbatch script and checks; submit nothing")
    ap.add_argument("--wait", action="store_true", help="SLURM mode: wait for the job and print its result")
    ap.add_argument("--after", default="", help="SLURM mode: start only after these job ids succeed (comma-separated)")
    ap.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or SQLite in the data folder)")
    ap.add_argument("--data-root", default=None, help="data folder (default: $PHYSDIFF_DATA or ./data)")
    add_config_args(ap)
    return ap


def resolve(args: argparse.Namespace) -> Any:
    extra = {"tracking.tracking_uri": args.tracking_uri, "paths.data_root": args.data_root}
    return config_from_args(args, extra)


# ----------------------------------------------------------------------------- SLURM


def slurm_parameters(args: argparse.Namespace, cfg: Any, stage: str) -> dict[str, Any]:
    """submitit parameters: one task per GPU (or CPU process), rendezvous on the first node."""
    per_node = args.procs if args.cpu else args.gpus
    params: dict[str, Any] = {
        "name": f"physdiff-{stage}",
        "nodes": args.nodes,
        "tasks_per_node": per_node,
        "timeout_min": args.time,
        "slurm_signal_delay_s": 120,  # USR2 two minutes before the limit: time to reach a step boundary and save
        "stderr_to_stdout": False,
    }
    if not args.cpu:
        params["gpus_per_node"] = args.gpus
        params["cpus_per_task"] = args.cpus_per_task or max(1, cfg.loader.num_workers + 1)
    elif args.cpus_per_task:
        params["cpus_per_task"] = args.cpus_per_task
    if args.partition:
        params["slurm_partition"] = args.partition
    params.update(_dependency(args))
    return params


def _dependency(args: argparse.Namespace) -> dict[str, Any]:
    """``--after 12,13`` -> sbatch ``--dependency=afterok:12:13`` (the ``--stage all`` chain)."""
    ids = [i.strip() for i in (args.after or "").split(",") if i.strip()]
    # kill-on-invalid-dep: when an upstream job fails, its dependants are cancelled instead of pending forever.
    return {"slurm_additional_parameters": {"dependency": "afterok:" + ":".join(ids), "kill-on-invalid-dep": "yes"}} if ids else {}


def job_folder(cfg: Any, stage: str, run_hash: str) -> Path:
    return cfg.paths.root() / "jobs" / f"{stage}-{run_hash}"


def sbatch_text(folder: Path, params: dict[str, Any]) -> str:
    """The exact sbatch script submitit would submit for these parameters."""
    import submitit

    ex = submitit.AutoExecutor(folder=folder / "%j", cluster="slurm")
    ex.update_parameters(**params)
    inner = ex._executor
    return inner._make_submission_file_text(inner._submitit_command_str, "dry-run")


def submit(args: argparse.Namespace, cfg: Any, stage: str, run_dir: Path, run_hash: str) -> Launch:
    import submitit

    from physdiff.training.cluster_job import StageJob

    folder = job_folder(cfg, stage, run_hash)
    ex = submitit.AutoExecutor(folder=folder / "%j", cluster="slurm")
    ex.update_parameters(**slurm_parameters(args, cfg, stage))
    job = ex.submit(StageJob(cfg.to_dict(), stage, cpu=args.cpu))
    print(f"submitted job {job.job_id}: {args.nodes} node(s) x {args.procs if args.cpu else args.gpus} task(s)")
    print(f"job folder:  {job.paths.folder} (logs per rank: {job.job_id}_<rank>_log.out/.err)")
    return Launch("slurm", stage, run_dir, job, Path(job.paths.folder))


# ----------------------------------------------------------------------------- local paths


def run_torchrun(args: argparse.Namespace, cfg: Any, stage: str, run_dir: Path) -> Launch:
    """K local gloo processes: torchrun runs the same worker as a SLURM task would."""
    cfg_path = cfg.write_json(run_dir / "launch-config.json")
    import time

    log_dir = run_dir / "logs" / time.strftime("torchrun-%Y%m%d-%H%M%S")
    cmd = [sys.executable, "-c", _TORCHRUN, "--standalone", f"--nproc_per_node={args.procs}",
           "--log-dir", str(log_dir), "--tee", "3",
           "-m", "physdiff.training.run", "--stage", stage, "--config", str(cfg_path), "--cpu"]
    env = dict(os.environ, PHYSDIFF_CPU="1")
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // args.procs)))
    print(f"torchrun: {args.procs} CPU processes; per-rank logs in {log_dir}", flush=True)
    rc = subprocess.call(cmd, env=env)
    if rc != 0:  # the ranks printed their errors (tee'd above); end with the root cause as one line
        errs = rank_errors(log_dir)
        if errs:
            rank, msg = errs[0]
            raise PhysdiffError(f"{msg} (rank {rank} of {args.procs}; per-rank logs in {log_dir})")
        raise PhysdiffError(f"torchrun failed with exit {rc}; per-rank logs in {log_dir}")
    return Launch("cpu", stage, run_dir, returncode=rc)


# torchrun whose failure summary is not raised as a traceback: a failed rank already printed its one-line
# error (run_cli), and launch.py repeats the root cause as its own last line.
_TORCHRUN = """import sys
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.run import main
try:
    main()
except ChildFailedError:
    sys.exit(1)
"""


def rank_errors(log_dir: Path) -> list[tuple[int, str]]:
    """``(rank, message)`` of every rank that ended with an ``error: ...`` line (torchrun per-rank logs)."""
    out = []
    for log in sorted(Path(log_dir).glob("*/attempt_*/*/stderr.log")):
        lines = [l[len("error: "):] for l in log.read_text(errors="replace").splitlines() if l.startswith("error: ")]
        if lines and log.parent.name.isdigit():
            out.append((int(log.parent.name), lines[-1]))
    return sorted(out)


def run_local(cfg: Any, stage: str, run_dir: Path) -> Launch:
    from physdiff.training.run import train_stage

    result = train_stage(cfg, stage)
    return Launch("local", stage, run_dir, result=result)


# ----------------------------------------------------------------------------- task stages


def run_task(args: argparse.Namespace, cfg: Any, stage: str) -> Launch:
    """A task stage (index, generate, evaluate): in this process (--local / --cpu), else one SLURM task."""
    if args.dry_run:
        print(cfg.to_json())
        print(f"task stage {stage}: would run physdiff.stages.run_task_stage('{stage}', cfg)")
        return Launch("dry-run", stage)
    if args.local or (args.cpu and not args.slurm):
        from physdiff.stages import run_task_stage

        result = run_task_stage(stage, cfg)
        return Launch("local", stage, result=result)
    import submitit

    folder = cfg.paths.root() / "jobs" / f"{stage}-{cfg.hash()}"
    ex = submitit.AutoExecutor(folder=folder / "%j", cluster="slurm")
    params: dict[str, Any] = {"name": f"physdiff-{stage}", "nodes": 1, "tasks_per_node": 1, "timeout_min": args.time}
    if args.gpus and not args.cpu:
        params["gpus_per_node"] = 1  # generation and evaluation run on one device
    if args.partition:
        params["slurm_partition"] = args.partition
    params.update(_dependency(args))
    ex.update_parameters(**params)
    from physdiff.stages import run_task_stage

    job = ex.submit(run_task_stage, stage, cfg)  # library function + Config dataclass: importable on the node
    print(f"submitted job {job.job_id} ({stage}); logs in {job.paths.folder}")
    out = Launch("slurm", stage, job=job, job_folder=Path(job.paths.folder))
    if args.wait:
        out.result = job.result()
    return out


# ----------------------------------------------------------------------------- main


def prepare_run(cfg: Any, stage: str) -> tuple[Path, str, str | None]:
    """Run folder + config.json, and the MLflow run (created now so its id can be printed)."""
    from physdiff.stages import get_recipe
    from physdiff.training.tracking import Tracker
    from physdiff.training.trainer import run_dir_for, run_hash

    recipe = get_recipe(stage)
    run_dir, rhash = run_dir_for(cfg, recipe), run_hash(cfg, recipe)
    cfg.write_json(run_dir / "config.json")
    if (run_dir / "DONE.json").exists():
        return run_dir, rhash, json.loads((run_dir / "DONE.json").read_text()).get("mlflow_run_id")
    tracker = Tracker(cfg, run_dir, stage, rhash)
    rid = tracker.start()
    return run_dir, rhash, rid


def launch(argv: list[str] | None = None) -> Launch:
    """Parse ``argv`` and launch (library entry point for tests and the pipeline)."""
    args = build_parser().parse_args(argv)
    cfg = resolve(args)
    if args.procs < 1 or args.gpus < 0 or args.nodes < 1:
        raise PhysdiffError("--procs and --nodes must be >= 1 and --gpus >= 0")
    if args.stage == "all":
        from launch_pipeline import run_pipeline

        return run_pipeline(args, cfg, argv or [])
    from physdiff.stages import TASK_STAGES

    if args.stage in TASK_STAGES:  # index / generate / evaluate: no training loop
        return run_task(args, cfg, args.stage)
    if args.dry_run:
        from launch_checks import dry_run

        dry_run(args, cfg, args.stage)
        return Launch("dry-run", args.stage)

    run_dir, rhash, rid = prepare_run(cfg, args.stage)
    print(f"run folder:  {run_dir}")
    from physdiff.training.tracking import default_tracking_uri

    print(f"MLflow run:  {rid or '(tracking unavailable; metrics in run folder)'} at {default_tracking_uri(cfg)}", flush=True)
    if args.local:
        out = run_local(cfg, args.stage, run_dir)
    elif args.cpu and not args.slurm:
        out = run_torchrun(args, cfg, args.stage, run_dir)
    else:
        out = submit(args, cfg, args.stage, run_dir, rhash)
        if args.wait:
            res = out.job.results()[0]  # rank 0 carries the result
            print(json.dumps(res, indent=2, default=str))
            out.result = res
    out.mlflow_run_id = rid
    done = run_dir / "DONE.json"
    if out.mode != "slurm":
        if done.exists():
            d = json.loads(done.read_text())
            print("finished: " + json.dumps({k: d[k] for k in ("step", "epoch", "metrics", "exports") if k in d}, default=str))
        elif out.returncode == 0:
            print(f"stopped before the end; relaunch the same command to resume from {run_dir / 'checkpoints'}")
    return out


def main() -> int:
    out = launch(sys.argv[1:])
    return out.returncode


if __name__ == "__main__":
    run_cli(main)
