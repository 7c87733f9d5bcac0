"""``physdiff launch``: run any stage, or the whole pipeline, here, on CPU processes, or on SLURM.

    physdiff launch --stage all --local --preset tiny                   # the whole pipeline in this process
    physdiff launch --stage prior --local --preset debug                # one stage, one GPU or the CPU
    physdiff launch --stage prior --cpu --procs 2 --preset debug        # 2 local gloo processes (torchrun)
    physdiff launch --stage prior --gpus 8 --partition gpu              # SLURM via submitit, 1 node x 8 GPUs
    physdiff launch --stage prior --gpus 8 --nodes 4 --time 1440        # 4 nodes, rendezvous on the first
    physdiff launch --stage all --gpus 8 --dry-run                      # print the SLURM chain; submit nothing
    physdiff launch --stage diffusion --config data/runs/diffusion-ours-0123456789/config.json
    physdiff launch --stage diffusion --local --preset tiny diffusion.variant=video   # a Table 1 row

(``python cluster/launch.py ...`` is the same command.) Trailing ``section.key=value`` tokens override the
config. A run's folder is named by the hash of the config keys it depends on (physdiff.identity):
launching the same config again resumes it, or skips it when finished; a preempted SLURM job
checkpoints, requeues itself and resumes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from physdiff.errors import PhysdiffError


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


def build_parser(prog: str = "physdiff launch") -> Any:
    from physdiff.cli.common import add_config_args, add_data_args, add_progress_arg, add_slurm_args, parser
    from physdiff.stages import STAGES

    ap = parser(prog, __doc__)
    ap.add_argument("--stage", required=True, choices=["all", *STAGES], metavar="STAGE",
                    help="a stage (" + ", ".join(STAGES) + ") or 'all' for the whole pipeline")
    ap.add_argument("--local", action="store_true", help="run in this process (one GPU or the CPU)")
    ap.add_argument("--cpu", action="store_true", help="CPU processes with gloo (with --procs); local unless --slurm")
    ap.add_argument("--procs", type=int, default=1, help="CPU processes per node (with --cpu; default: 1)")
    ap.add_argument("--slurm", action="store_true", help="with --cpu: submit the CPU processes to SLURM")
    ap.add_argument("--dry-run", action="store_true",
                    help="print the config, the sbatch script(s) and checks; write and submit nothing")
    ap.add_argument("--wait", action="store_true", help="SLURM mode: wait for the (last) job and print its result")
    ap.add_argument("--after", default="", metavar="IDS", help="SLURM mode: start only after these job ids succeed (comma-separated)")
    ap.add_argument("--seed", type=int, default=None, help="the training seed (seed)")
    add_slurm_args(ap, training=True)
    add_data_args(ap)
    add_progress_arg(ap)
    add_config_args(ap)
    return ap


def resolve(args: Any) -> Any:
    from physdiff.cli.common import config_from_args, data_overrides

    return config_from_args(args, {**data_overrides(args), "seed": args.seed})


def _where(args: Any) -> str:
    """"local" (this process), "cpu" (local torchrun) or "slurm"."""
    if args.local:
        return "local"
    if args.cpu and not args.slurm:
        return "cpu"
    return "slurm"


# ----------------------------------------------------------------------------- one stage


def prepare_run(cfg: Any, stage: str) -> tuple[Any, Path, str | None]:
    """A training stage's config, run folder (+ config.json) and MLflow run (created now so its id can be printed)."""
    p = _prepare_locked(cfg, stage)
    p.lock.release()
    return p.cfg, p.run_dir, p.mlflow_run_id


@dataclass
class _Prepared:
    cfg: Any
    run_dir: Path
    mlflow_run_id: str | None
    lock: Any  # physdiff.training.runlock.RunLock, held
    created: bool  # this launch made the run folder (a failure may remove it again)


def _prepare_locked(cfg: Any, stage: str) -> _Prepared:
    """:func:`prepare_run` under the run folder's lock, returned held (physdiff.training.runlock): two launches
    of one run never both create its MLflow run, and a launch refuses a run another process is training."""
    from physdiff.artifacts import DONE
    from physdiff.launch.failure import clear_failure
    from physdiff.stages import get_recipe
    from physdiff.training.runlock import RunLock
    from physdiff.training.tracking import Tracker
    from physdiff.training.trainer import run_config, run_dir_for, run_hash

    recipe = get_recipe(stage)
    cfg = run_config(cfg, recipe)
    run_dir, rhash = run_dir_for(cfg, recipe), run_hash(cfg, recipe)
    existed = run_dir.exists()
    lock = RunLock(run_dir, cfg.train.lock_timeout, stage).acquire()
    created = not existed and not (run_dir / "config.json").exists()
    try:
        cfg.write_json(run_dir / "config.json")
        if (run_dir / DONE).exists():
            rid = json.loads((run_dir / DONE).read_text()).get("mlflow_run_id")
        else:
            clear_failure(run_dir)
            rid = Tracker(cfg, run_dir, stage, rhash).start()
    except BaseException as e:
        if isinstance(e, Exception) and created:
            from physdiff.launch.failure import record_failed_launch

            record_failed_launch(run_dir, cfg, None, e, created=True)
        lock.release()
        raise
    return _Prepared(cfg, run_dir, rid, lock, created)


def _settle_failure(p: _Prepared, exc: BaseException) -> None:
    """A failed launch: mark its MLflow run FAILED and remove the folder it made (physdiff.launch.failure),
    provided this process holds (or can take at once) the run folder's lock: otherwise it is another's run."""
    from physdiff.launch.failure import record_failed_launch
    from physdiff.training.runlock import RunLock, RunLocked

    try:
        lock = RunLock(p.run_dir, 0, "launch").acquire()
    except RunLocked:
        return
    try:
        record_failed_launch(p.run_dir, p.cfg, p.mlflow_run_id, exc, created=p.created)
    finally:
        lock.release()


def run_torchrun(args: Any, cfg: Any, stage: str, run_dir: Path) -> Launch:
    """K local gloo processes: torchrun runs the same worker as a SLURM task would."""
    cfg_path = cfg.write_json(run_dir / "launch-config.json")
    log_dir = run_dir / "logs" / time.strftime("torchrun-%Y%m%d-%H%M%S")
    cmd = [sys.executable, "-c", _TORCHRUN, "--standalone", f"--nproc_per_node={args.procs}",
           "--log-dir", str(log_dir), "--tee", "3",
           "-m", "physdiff.launch.worker", "--stage", stage, "--config", str(cfg_path), "--cpu"]
    env = dict(os.environ, PHYSDIFF_CPU="1")
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // args.procs)))
    print(f"torchrun: {args.procs} CPU processes; per-rank logs in {log_dir}", flush=True)
    rc = subprocess.call(cmd, env=env)
    if rc != 0:  # the ranks printed their errors (tee'd above); end with the root cause as one line
        errs = rank_errors(log_dir)
        if errs:
            # the root cause: an anticipated error (it names the file or setting) before the peers' collective
            # breakdowns, which run_cli reports as unexpected failures ("Connection closed by peer")
            rank, msg = min(errs, key=lambda e: ("unexpected failure" in e[1], e[0]))
            raise PhysdiffError(f"{msg} (rank {rank} of {args.procs}; per-rank logs in {log_dir})")
        raise PhysdiffError(f"torchrun failed with exit {rc}; per-rank logs in {log_dir}")
    return Launch("cpu", stage, run_dir, returncode=rc)


# torchrun whose failure summary is not raised as a traceback: a failed rank already printed its one-line
# error (run_cli), and the launcher repeats the root cause as its own last line.
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


def run_step(args: Any, cfg: Any, stage: str, label: str | None = None) -> Launch:
    """One stage here (``--local`` in this process; ``--cpu`` training through torchrun)."""
    from physdiff.stages import run_function_stage, stage as spec_of, train_stage
    from physdiff.training.tracking import default_tracking_uri

    spec = spec_of(stage)
    if spec.kind != "train":
        return Launch("local", stage, result=run_function_stage(stage, cfg))
    prep = _prepare_locked(cfg, stage)
    cfg, run_dir, rid = prep.cfg, prep.run_dir, prep.mlflow_run_id
    print(f"run folder:  {run_dir}")
    print(f"MLflow run:  {rid or '(tracking unavailable; metrics in run folder)'} at {default_tracking_uri(cfg)}", flush=True)
    try:
        if _where(args) == "cpu":
            prep.lock.release()  # rank 0 of the torchrun processes takes it
            out = run_torchrun(args, cfg, stage, run_dir)
        else:
            out = Launch("local", stage, run_dir, result=train_stage(cfg, stage))  # the engine re-enters the lock
    except Exception as e:
        _settle_failure(prep, e)
        raise
    finally:
        prep.lock.release()
    out.mlflow_run_id = rid
    done = run_dir / "DONE.json"
    if done.exists():
        d = json.loads(done.read_text())
        m = d.get("metrics", {})
        val = {k: v for k, v in m.items() if k.startswith("val/") and not k.startswith("val/denoise_loss_t")}
        shown = ", ".join(f"{k} {v:.4g}" for k, v in sorted(val.items()) if isinstance(v, (int, float)))
        print(f"finished {run_dir.name}: step {d.get('step')}, epoch {d.get('epoch')}" + (f"; {shown}" if shown else ""))
    elif out.returncode == 0:
        print(f"stopped before the end; relaunch the same command to resume from {run_dir / 'checkpoints'}")
    return out


def submit_step(args: Any, cfg: Any, stage: str, label: str | None = None, after: list[str] | None = None) -> Launch:
    """One stage as a SLURM job (training: one task per GPU / CPU process; data and task stages: one task)."""
    from physdiff.launch.slurm import StageJob, job_folder, run_function_job, slurm_parameters, submit
    from physdiff.stages import stage as spec_of

    after = list(after if after is not None else [a for a in (args.after or "").split(",") if a.strip()])
    spec = spec_of(stage)
    if spec.kind == "train":
        prep = _prepare_locked(cfg, stage)
        cfg, run_dir, rid = prep.cfg, prep.run_dir, prep.mlflow_run_id
        try:
            params = slurm_parameters(args, cfg, label or stage, after=after)
            job = submit(StageJob(cfg.to_dict(), stage, cpu=args.cpu), job_folder(cfg, run_dir.name), params)
        except Exception as e:
            _settle_failure(prep, e)
            raise
        finally:
            prep.lock.release()  # the job's rank 0 takes it when it starts
        per_node = args.procs if args.cpu else args.gpus
        print(f"submitted job {job.job_id}: {args.nodes} node(s) x {per_node} task(s); logs per rank in "
              f"{job.paths.folder} ({job.job_id}_<rank>_log.out/.err)", flush=True)
        return Launch("slurm", stage, run_dir, job, Path(job.paths.folder), mlflow_run_id=rid)
    from physdiff.stages import stage_run_dir

    out_dir = stage_run_dir(cfg, stage)
    params = slurm_parameters(args, cfg, label or stage, tasks="one", after=after)
    job = submit(run_function_job, job_folder(cfg, out_dir.name), params, stage, cfg.to_dict())
    print(f"submitted job {job.job_id} ({label or stage}); logs in {job.paths.folder}", flush=True)
    return Launch("slurm", stage, out_dir, job, Path(job.paths.folder))


# ----------------------------------------------------------------------------- the entry


def launch(argv: list[str] | None = None) -> Launch:
    """Parse ``argv`` and launch (the library entry point for tests and scripts)."""
    from physdiff.launch import pipeline

    args = build_parser().parse_args(argv)
    if args.procs < 1 or args.gpus < 0 or args.nodes < 1:
        raise PhysdiffError("--procs and --nodes must be >= 1 and --gpus >= 0")
    cfg = resolve(args)
    where = _where(args)
    if where == "slurm":  # [extras] before any run folder or MLflow run exists: one line naming the extra
        from physdiff.extras import require

        require("submitit", extra="cluster", feature="physdiff launch on SLURM")
    if args.stage == "all":
        if args.dry_run:
            pipeline.print_chain(args, cfg, slurm=where == "slurm")
            return Launch("dry-run", "all")
        if where == "slurm":
            _jobs, last = pipeline.submit_slurm(args, cfg, submit_step)
            if args.wait:
                print_outcome(cfg)
            return last or Launch("slurm", "all")
        last = pipeline.run_local(args, cfg, run_step)
        if last is not None and not last.returncode:
            print_outcome(cfg)
        return last or Launch("local", "all")
    if args.dry_run:
        from physdiff.launch.checks import dry_run
        from physdiff.stages import stage as spec_of

        if spec_of(args.stage).kind == "train":
            dry_run(args, cfg, args.stage)
        else:
            print(cfg.to_json())
            print(f"{spec_of(args.stage).kind} stage {args.stage}: would run {spec_of(args.stage).target} on this config")
        return Launch("dry-run", args.stage)
    if where == "slurm":
        out = submit_step(args, cfg, args.stage)
        if args.wait:
            res = out.job.results()[0]  # rank 0 carries the result
            print(json.dumps(res, indent=2, default=str))
            out.result = res
        return out
    return run_step(args, cfg, args.stage)


def print_outcome(cfg: Any) -> None:
    """Where the report, the generated media and the MLflow UI are."""
    from physdiff import identity
    from physdiff.training.tracking import default_tracking_uri

    report = identity.artifact_dir(cfg, "evaluate") / "report.md"
    gen = identity.artifact_dir(cfg, "generate")
    if report.is_file():
        print(f"\nreport:     {report}")
    if gen.is_dir():
        print(f"generated:  {gen}  (per test video: WAVs, soundtrack.wav, *_generated.mp4, comparison.png)")
    uri = default_tracking_uri(cfg)
    if uri.startswith("sqlite:"):
        from physdiff.extras import has_distribution, install_command

        ui = f"{Path(sys.executable).parent / 'mlflow'} ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000"
        if not has_distribution("mlflow"):  # [extras] the core tracks with mlflow-skinny, which has no UI server
            ui += f"  (the UI is the 'server' extra: {install_command('server')})"
        print(f"MLflow UI:  {ui}")
    else:
        print(f"MLflow:     {uri}")


def main(argv: list[str] | None = None) -> int:
    return launch(argv).returncode
