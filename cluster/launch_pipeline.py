"""``launch.py --stage all``: the whole pipeline, skipping stages already complete for this config.

    synth     -> <data>/world/<hash>    (shards/synth.py; complete when its train.txt and test.txt exist)
    shards    -> <data>/shards/<hash>   (shards/build.py; complete when summary.json exists)
    prior, video, diffusion             (training stages; complete when the run folder holds DONE.json)
    index, generate, evaluate           (task stages; each skips its work when already complete)

``--local`` runs everything in this process, ``--cpu --procs K`` the training stages through
torchrun. On SLURM (neither flag, or ``--cpu --slurm``) the chain is submitted at once as dependent
jobs, each starting only when the stages it reads have succeeded (``--dependency=afterok``)::

    data (synth + shards) ─┬─> prior ─┐
                           └─> video ─┴─> diffusion ─> index ─┬─> generate
                                                              └─> evaluate

so the prior and the video encoder train side by side, and a preempted job that requeues keeps
its dependants waiting instead of failing them. ``--wait`` waits for the last job.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

# What each stage reads (for SLURM dependencies); stages not listed depend on the data job only.
UPSTREAM: dict[str, tuple[str, ...]] = {
    "diffusion": ("prior", "video"),
    "index": ("diffusion",),
    "generate": ("index",),
    "evaluate": ("index",),
}


def _script_args(args: Any, cfg: Any) -> list[str]:
    return ["--preset", args.preset, *args.overrides]


def _data_commands(args: Any, cfg: Any) -> list[tuple[str, list[str]]]:
    """The synth and shards commands still to run for this config (none when both are complete)."""
    from physdiff.stages import shards_dir, world_dir

    world, shards = world_dir(cfg), shards_dir(cfg)
    cmds = []
    if (world / "train.txt").exists() and (world / "test.txt").exists():
        print(f"[all] synth: complete ({world})")
    else:
        cmds.append(("synth", [sys.executable, str(REPO / "shards/synth.py"), "--out", str(world), *_script_args(args, cfg)]))
    if (shards / "summary.json").exists():
        print(f"[all] shards: complete ({shards})")
    else:
        cmds.append(("shards", [sys.executable, str(REPO / "shards/build.py"), "--source", str(world), "--out",
                                str(shards), *_script_args(args, cfg)]))
    return cmds


def _env(cfg: Any) -> dict[str, str] | None:
    return dict(os.environ, PHYSDIFF_DATA=str(cfg.paths.root())) if cfg.paths.data_root else None


def run_data_commands(cmds: list[tuple[str, list[str]]], env: dict[str, str] | None) -> None:
    """Run synth / shards as subprocesses (module level: also what the SLURM data job runs)."""
    from physdiff.errors import PhysdiffError

    for what, cmd in cmds:
        print(f"[all] {what}: {' '.join(cmd)}", flush=True)
        rc = subprocess.call(cmd, env=env)
        if rc != 0:
            raise PhysdiffError(f"stage {what} failed (exit {rc}); see its output above")


def _stage_argv(argv: list[str], name: str, after: list[str] | None = None) -> list[str]:
    rest = list(argv)
    i = rest.index("--stage")
    rest[i + 1] = name
    if after:
        rest[i + 2:i + 2] = ["--after", ",".join(after)]
    return rest


def run_pipeline(args: Any, cfg: Any, argv: list[str]) -> Any:
    from physdiff.stages import stage_names, task_stage_names

    on_slurm = not args.local and (not args.cpu or args.slurm) and not args.dry_run
    if on_slurm:
        return submit_chain(args, cfg, argv)
    from launch import Launch, launch

    t0 = time.time()
    run_data_commands(_data_commands(args, cfg), _env(cfg))
    last = None
    for name in [*stage_names(), *task_stage_names()]:
        print(f"[all] {name} ({time.time() - t0:.0f} s elapsed)", flush=True)
        last = launch(_stage_argv(argv, name))
        if last.returncode:
            return last
    print(f"[all] done in {time.time() - t0:.0f} s")
    _print_outcome(cfg)
    return last or Launch("all", "all")


def submit_chain(args: Any, cfg: Any, argv: list[str]) -> Any:
    """Submit every stage at once as SLURM jobs chained by ``afterok`` dependencies."""
    import submitit
    from launch import Launch, launch

    from physdiff.stages import stage_names, task_stage_names

    jobs: dict[str, str] = {}
    cmds = _data_commands(args, cfg)
    if cmds:
        ex = submitit.AutoExecutor(folder=cfg.paths.root() / "jobs" / f"data-{cfg.hash()}" / "%j", cluster="slurm")
        params: dict[str, Any] = {"name": "physdiff-data", "nodes": 1, "tasks_per_node": 1, "timeout_min": args.time,
                                  "cpus_per_task": max(1, cfg.shards.workers)}
        if args.partition:
            params["slurm_partition"] = args.partition
        ex.update_parameters(**params)
        # A plain command job (submitit's CommandFunction): the node needs physdiff, not this script.
        script = " && ".join(shlex.join(cmd) for _, cmd in cmds)
        job = ex.submit(submitit.helpers.CommandFunction(["bash", "-c", script], env=_env(cfg)))
        jobs["data"] = str(job.job_id)
        print(f"[all] data: job {job.job_id} ({', '.join(w for w, _ in cmds)})", flush=True)
    last = None
    for name in [*stage_names(), *task_stage_names()]:
        after = [jobs[u] for u in UPSTREAM.get(name, ("data",)) if u in jobs]
        last = launch(_stage_argv(argv, name, after))
        if last.returncode:
            return last
        if last.job is not None:
            jobs[name] = str(last.job.job_id)
            print(f"[all] {name}: job {last.job.job_id}" + (f" after {','.join(after)}" if after else ""), flush=True)
        else:
            print(f"[all] {name}: complete, nothing submitted", flush=True)
    print("[all] submitted: " + ", ".join(f"{k}={v}" for k, v in jobs.items()))
    if args.wait and last is not None and last.job is not None:
        last.job.result()
        _print_outcome(cfg)
    return last or Launch("all", "all")


def _print_outcome(cfg: Any) -> None:
    """Where the report, the generated media and the MLflow UI are."""
    from physdiff.training.tracking import default_tracking_uri

    root = cfg.paths.root()
    reports = sorted((root / "runs").glob("evaluate-*/report.md"), key=lambda p: p.stat().st_mtime)
    gens = sorted((root / "runs").glob("generate-*"), key=lambda p: p.stat().st_mtime)
    if reports:
        print(f"\nreport:     {reports[-1]}")
    if gens:
        print(f"generated:  {gens[-1]}  (per test video: WAVs, soundtrack.wav, *_generated.mp4, comparison.png)")
    uri = default_tracking_uri(cfg)
    if uri.startswith("sqlite:"):
        print(f"MLflow UI:  {Path(sys.executable).parent / 'mlflow'} ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000")
    else:
        print(f"MLflow:     {uri}")
