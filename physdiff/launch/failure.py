"""A launch that failed leaves no orphan: its MLflow run is marked FAILED with the reason, its empty run folder goes.

``physdiff launch`` creates the run folder (``config.json``, ``mlflow.json``) and its MLflow run before
training, so the ids can be printed. When the stage then fails (missing shards, a bad upstream export, a
refused submission), what it made would otherwise stay behind: a folder with nothing in it and an MLflow
run RUNNING forever. :func:`record_failed_launch` settles both:

* the MLflow run ends ``FAILED``, tagged ``physdiff.failure`` = the one-line reason;
* a run folder this launch created that holds nothing worth keeping (no checkpoint, no metrics, no
  export) is removed; any other is kept (it resumes) with ``FAILED.json`` holding the reason, which the
  next launch of the run removes.

A :class:`physdiff.training.runlock.RunLocked` failure is never recorded: the run belongs to another live
process. The caller holds the run folder's lock while this runs, so no other launch is using the folder.

    try:
        train_stage(cfg, stage)
    except Exception as e:
        record_failed_launch(run_dir, cfg, rid, e, created=created)
        raise
"""

from __future__ import annotations

import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any

FAILED = "FAILED.json"
# what a launch writes before training starts: a folder holding only these has nothing to lose
LAUNCH_FILES = {"config.json", "mlflow.json", "launch-config.json", "run.lock", FAILED}


def _only_launch_files(run_dir: Path) -> bool:
    """Nothing but what a launch writes before training (torchrun's per-rank logs count as worth keeping:
    the error line points at them)."""
    for p in run_dir.iterdir():
        if p.name in LAUNCH_FILES:
            continue
        if p.is_dir() and p.name == "checkpoints" and not any(p.iterdir()):
            continue  # the engine's empty checkpoint folder
        return False
    return True


def mark_mlflow_failed(cfg: Any, run_id: str | None, reason: str) -> None:
    """End the MLflow run ``run_id`` as FAILED with tag ``physdiff.failure``; a tracking failure only warns."""
    if not run_id or not cfg.tracking.enabled:
        return
    try:
        from mlflow.tracking import MlflowClient

        from physdiff.training.tracking import default_tracking_uri

        c = MlflowClient(tracking_uri=default_tracking_uri(cfg))
        c.set_tag(run_id, "physdiff.failure", reason[:5000])
        c.set_terminated(run_id, "FAILED")
    except Exception as e:  # noqa: BLE001  (tracking never masks the launch's own error)
        warnings.warn(f"could not mark MLflow run {run_id} FAILED ({type(e).__name__}: {str(e)[:200]})", RuntimeWarning,
                      stacklevel=2)


def record_failed_launch(run_dir: Path | None, cfg: Any, run_id: str | None, exc: BaseException, *,
                         created: bool) -> str:
    """Settle what a failed launch made (see the module docstring); returns what was done, in words."""
    from physdiff.errors import error_line
    from physdiff.fileio import atomic_write_json
    from physdiff.training.runlock import RunLocked

    if isinstance(exc, RunLocked):
        return "not recorded: the run belongs to another process"
    reason = error_line(exc)
    mark_mlflow_failed(cfg, run_id, reason)
    if run_dir is None or not Path(run_dir).is_dir():
        return "MLflow run marked FAILED"
    run_dir = Path(run_dir)
    if created and _only_launch_files(run_dir):
        shutil.rmtree(run_dir, ignore_errors=True)
        print(f"removed {run_dir}: the launch failed before anything was trained", file=sys.stderr)
        return "run folder removed"
    atomic_write_json(run_dir / FAILED, {"reason": reason, "time": time.time(), "mlflow_run_id": run_id})
    return "FAILED.json written"


def clear_failure(run_dir: Path) -> None:
    """A new launch of the run: the previous failure no longer describes it."""
    (Path(run_dir) / FAILED).unlink(missing_ok=True)
