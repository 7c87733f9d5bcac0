"""MLflow tracking for stage runs: one MLflow run per stage run, continued across requeues.

Only rank 0 creates a :class:`Tracker`. Every metric is first appended to ``<run>/metrics.jsonl``
(the run folder is the source of truth), then sent to MLflow. The MLflow run id is stored in
``<run>/mlflow.json`` (per tracking URI), so a requeued or resumed job reopens the same run. The run
is named like its folder (``diffusion-ours-<hash>``), nested under ``tracking.parent_run_id`` (the
pipeline's parent run) and tagged with the git commit; ``physdiff.resumes`` counts the times training
resumed from a checkpoint (0 for a run that never stopped).

Training never dies because tracking does: any MLflow failure (unreachable server, locked
database) is reported once as a warning and tracking is switched off for the rest of the process;
the JSONL file keeps every metric.

Default store: ``sqlite:///<data_root>/mlflow.db`` with artifacts in ``<data_root>/mlartifacts``;
``tracking.tracking_uri`` (the launcher's ``--tracking-uri``) or ``$MLFLOW_TRACKING_URI`` override it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any

from physdiff.configlib import to_dict
from physdiff.fileio import atomic_write_json

log = logging.getLogger(__name__)

# Fail fast against a dead server instead of MLflow's default minutes of retries.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")


def default_tracking_uri(cfg: Any) -> str:
    """Config value, else $MLFLOW_TRACKING_URI, else the SQLite store in the data folder."""
    if cfg.tracking.tracking_uri:
        return cfg.tracking.tracking_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{cfg.paths.root() / 'mlflow.db'}"


_GIT_COMMIT: list[str | None] = []


def git_commit() -> str | None:
    """The commit of the physdiff checkout this process runs from (None outside a git checkout)."""
    if not _GIT_COMMIT:
        import subprocess

        here = Path(__file__).resolve().parents[2]
        try:
            out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
            commit = out.stdout.strip() if out.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            commit = None
        _GIT_COMMIT.append(commit)
    return _GIT_COMMIT[0]


def flat_params(d: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat_params(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = str(v)[:500]
    return out


class Tracker:
    """Rank-0 tracking of one stage run (see module docstring)."""

    def __init__(self, cfg: Any, run_dir: Path, stage: str, run_hash: str, name: str | None = None) -> None:
        self.cfg = cfg
        self.name = name  # the MLflow run name (default: the run folder's name)
        self.run_dir = Path(run_dir)
        self.stage = stage
        self.run_hash = run_hash
        self.uri = default_tracking_uri(cfg)
        self.jsonl = self.run_dir / "metrics.jsonl"
        self.run_id: str | None = None
        self.enabled = bool(cfg.tracking.enabled)
        self._client: Any = None
        self._warned = False

    # ------------------------------------------------------------------ safety wrapper
    def _guard(self, what: str, fn: Any, *a: Any, **kw: Any) -> Any:
        if not self.enabled or self._client is None:
            return None
        try:
            return fn(*a, **kw)
        except Exception as e:  # tracking must never stop training: warn once, continue locally
            self.enabled = False
            if not self._warned:
                self._warned = True
                warnings.warn(
                    f"MLflow tracking at {self.uri} failed during {what} ({type(e).__name__}: {str(e)[:200]}); "
                    f"continuing without it, metrics are kept in {self.jsonl}",
                    RuntimeWarning,
                    stacklevel=2,
                )
            return None

    # ------------------------------------------------------------------ run lifecycle
    def start(self) -> str | None:
        """Open (or reopen) this stage run's MLflow run; returns its id (None when tracking is off)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not self.enabled:
            return None
        try:
            from mlflow.tracking import MlflowClient

            if self.uri.startswith("sqlite:///"):
                Path(self.uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
            self._client = MlflowClient(tracking_uri=self.uri)
        except Exception as e:
            self._client = object()  # so _guard reports it
            err = e  # bound for the lambda (Python unbinds ``e`` when the except block ends)
            return self._guard("client setup", lambda: (_ for _ in ()).throw(err))
        return self._guard("run start", self._start)

    def _start(self) -> str:
        c = self._client
        ids_file = self.run_dir / "mlflow.json"
        ids = json.loads(ids_file.read_text()) if ids_file.exists() else {}
        rid = ids.get(self.uri)
        if rid is not None:
            try:
                run = c.get_run(rid)
                c.update_run(rid, status="RUNNING")
                self.run_id = run.info.run_id
                return self.run_id
            except Exception as e:  # the store was reset or moved: say so, then open a new run below
                log.info(f"[tracking] MLflow run {rid} is not in {self.uri} ({type(e).__name__}); opening a new run")
                rid = None
        exp = c.get_experiment_by_name(self.cfg.tracking.experiment)
        if exp is None:
            loc = None
            if self.uri.startswith("sqlite:///"):
                loc = (self.cfg.paths.root() / "mlartifacts").as_uri()
            exp_id = c.create_experiment(self.cfg.tracking.experiment, artifact_location=loc)
        else:
            exp_id = exp.experiment_id
        tags = {
            "physdiff.stage": self.stage,
            "physdiff.run_hash": self.run_hash,
            "physdiff.run_dir": str(self.run_dir),
            "physdiff.preset": str(self.cfg.preset),
            "physdiff.resumes": "0",
        }
        if self.stage in ("diffusion", "index", "generate"):
            tags["physdiff.variant"] = str(self.cfg.diffusion.variant)
        commit = git_commit()
        if commit:
            tags["mlflow.source.git.commit"] = commit
        if self.cfg.tracking.parent_run_id:
            tags["mlflow.parentRunId"] = self.cfg.tracking.parent_run_id
        run = c.create_run(exp_id, run_name=self.cfg.tracking.run_name or self.name or self.run_dir.name, tags=tags)
        self.run_id = run.info.run_id
        from mlflow.entities import Param

        params = [Param(k, v) for k, v in flat_params(to_dict(self.cfg)).items()]
        for i in range(0, len(params), 100):
            c.log_batch(self.run_id, params=params[i : i + 100])
        cfg_path = self.run_dir / "config.json"
        if cfg_path.exists():
            c.log_artifact(self.run_id, str(cfg_path))
        ids[self.uri] = self.run_id
        atomic_write_json(ids_file, ids)
        return self.run_id

    # ------------------------------------------------------------------ logging
    def log_metrics(self, metrics: dict[str, float], step: int, epoch: int | None = None) -> None:
        row = {"step": step, "epoch": epoch, "time": time.time(), **{k: float(v) for k, v in metrics.items()}}
        with self.jsonl.open("a") as f:
            f.write(json.dumps(row) + "\n")
        if not self.enabled or self.run_id is None:
            return
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        ms = [Metric(k, float(v), ts, step) for k, v in metrics.items() if math.isfinite(float(v))]
        self._guard("log_metrics", self._client.log_batch, self.run_id, metrics=ms)

    def log_artifacts(self, local_dir: Path, artifact_path: str | None = None) -> None:
        if self.enabled and self.run_id is not None:
            self._guard("log_artifacts", self._client.log_artifacts, self.run_id, str(local_dir), artifact_path)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        if self.enabled and self.run_id is not None and Path(path).exists():
            self._guard("log_artifact", self._client.log_artifact, self.run_id, str(path), artifact_path)

    def record_resume(self, step: int) -> None:
        """Training resumed from the checkpoint of ``step``: count it in ``physdiff.resumes``."""
        if not (self.enabled and self.run_id is not None):
            return

        def bump() -> None:
            run = self._client.get_run(self.run_id)
            n = int(run.data.tags.get("physdiff.resumes", "0")) + 1
            self._client.set_tag(self.run_id, "physdiff.resumes", str(n))
            self._client.set_tag(self.run_id, "physdiff.resumed_from_step", str(step))

        self._guard("record_resume", bump)

    def set_tags(self, tags: dict[str, str]) -> None:
        if self.enabled and self.run_id is not None:
            for k, v in tags.items():
                self._guard("set_tag", self._client.set_tag, self.run_id, k, str(v))

    def finish(self, status: str = "FINISHED") -> None:
        """FINISHED at the end, KILLED when stopped for a requeue (reopened as RUNNING), FAILED on error."""
        if self.enabled and self.run_id is not None:
            self._guard("set_terminated", self._client.set_terminated, self.run_id, status)


class track_task:  # noqa: N801  (a context manager used like a function)
    """Track a task stage (index, generate, evaluate) as an MLflow run, opened when the stage starts:

        with track_task(cfg, run_dir, "evaluate", run_hash) as tracker:
            ...                                    # tracker.log_metrics / log_artifact / set_tags
    The run ends FINISHED, or FAILED when the block raises (the error is re-raised).
    """

    def __init__(self, cfg: Any, run_dir: Path, stage: str, run_hash: str, name: str | None = None) -> None:
        self.tracker = Tracker(cfg, run_dir, stage, run_hash, name)

    def __enter__(self) -> Tracker:
        self.tracker.start()
        return self.tracker

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.tracker.finish("FINISHED" if exc_type is None else "FAILED")
