"""Shared machinery of the Ray Tune studies in ``sweeps/``: Ray start-up, the MLflow parent run, tables.

Each study file (one per sweep, audiocraft-style) builds a search space and a trainable; this module
holds what every study needs and nothing study-specific:

* :func:`init_ray` — a local Ray (token auth off, CPUs capped) or a running cluster (``--address``).
* :class:`ParentRun` — the sweep's MLflow parent run. Trial runs are the stage runs the trainer
  opens itself, nested under it with ``tracking.parent_run_id`` (MLflow's ``mlflow.parentRunId``
  tag); the parent survives a resumed sweep because its id is kept in the sweep folder. Like the
  trainer's tracker, it never stops a sweep: a tracking failure warns once and is then skipped.
* :func:`write_table` — the results as CSV and Markdown.

Study modules live beside this one (``physdiff/sweeps/<study>.py``); the engine and the stages never import them.
"""

from __future__ import annotations

import csv
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from physdiff.extras import require

# [extras] Ray Tune is the 'sweeps' extra; the studies import this module first, so a missing Ray is one line.
require("ray.tune", extra="sweeps", feature="physdiff sweep (Ray Tune)")
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler  # noqa: E402

# Fail fast against a dead tracking server instead of MLflow's default minutes of retries.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")


# ----------------------------------------------------------------------------- Ray


def init_ray(address: str = "", num_cpus: int | None = None, num_gpus: int | None = None) -> None:
    """Connect to ``address`` (a running cluster, e.g. from ``slurm/ray_sweep.sbatch``) or start Ray here.

    A local Ray gets ``RAY_AUTH_MODE=disabled`` unless the caller set it: Ray 2.5x+ enables token
    authentication by default and writes ``~/.ray/auth_token``, which a one-machine sweep does not need.
    """
    import ray

    if ray.is_initialized():
        return
    if address:
        # Join the cluster as a driver; the cluster's own resources apply.
        ray.init(address=address, include_dashboard=False, log_to_driver=True)
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    # A one-machine Ray must not listen beyond this machine. On Linux Ray picks the outbound interface's
    # address as its node IP (and rewrites 127.0.0.1 given as _node_ip_address to it), so GCS, raylet and
    # agents listen on that address or on all interfaces. This switch (named for macOS/Windows, where it
    # is the default) makes Ray use the loopback address as node IP, and every Ray server binds 127.0.0.1
    # (asserted by tests/reliability/test_security.py). The environment reaches the processes Ray starts;
    # the driver read the constant when ray was imported, so it is set there too.
    if os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0") == "0":
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False
    # address="local": always a new Ray for this driver. Without it, ray.init() attaches to whatever
    # cluster /tmp/ray/ray_current_cluster or $RAY_ADDRESS names (another user's, or a dead one).
    ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False, log_to_driver=True)


class GroupedASHA(FIFOScheduler):
    """ASHA run independently within each value of ``config[group_key]`` (one ASHA per group).

    Why: in an ablation (Fig. 5a: loss vs M) early stopping must pick the learning rate *within*
    each M, never rank one M against another, or a slower-starting large M would be cut before it
    catches up and the curve would be biased towards small M. Module-level so Tune can save it
    with the experiment state for ``Tuner.restore``.
    """

    def __init__(self, group_key: str, **asha_kwargs: Any) -> None:
        super().__init__()
        self._key, self._kw = group_key, dict(asha_kwargs)
        self._sub: dict[str, ASHAScheduler] = {}
        self._metric: str | None = None
        self._mode: str | None = None

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        self._metric, self._mode = metric or self._metric, mode or self._mode
        return True

    def _group(self, trial: Any) -> ASHAScheduler:
        g = str(trial.config.get(self._key))
        if g not in self._sub:
            self._sub[g] = ASHAScheduler(metric=self._metric, mode=self._mode, **self._kw)
        return self._sub[g]

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        self._group(trial).on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        return self._group(trial).on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        self._group(trial).on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        self._group(trial).on_trial_remove(tune_controller, trial)

    def debug_string(self) -> str:
        return f"ASHA per {self._key}: " + "; ".join(f"{g}: {s._num_stopped} stopped" for g, s in self._sub.items())


# ----------------------------------------------------------------------------- MLflow


def sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


@dataclass
class ParentRun:
    """The sweep's parent MLflow run; every call is guarded (tracking never stops the sweep)."""

    uri: str
    experiment: str
    run_id: str | None = None
    artifact_location: str | None = None  # for a new experiment in a local SQLite store
    _client: Any = field(default=None, repr=False)
    _dead: bool = field(default=False, repr=False)

    def _guard(self, what: str, fn: Any, *a: Any, **kw: Any) -> Any:
        if self._dead:
            return None
        try:
            if self._client is None:
                from mlflow.tracking import MlflowClient

                p = sqlite_path(self.uri)
                if p is not None:
                    p.parent.mkdir(parents=True, exist_ok=True)
                self._client = MlflowClient(tracking_uri=self.uri)
            return fn(*a, **kw)
        except Exception as e:  # tracking must not stop a sweep: warn once, then skip tracking
            self._dead = True
            warnings.warn(
                f"MLflow at {self.uri} failed during {what} ({type(e).__name__}: {str(e)[:200]}); "
                "the sweep continues and keeps its results in the sweep folder",
                RuntimeWarning,
                stacklevel=3,
            )
            return None

    def open(self, run_name: str, tags: dict[str, str], params: dict[str, Any]) -> str | None:
        """Reopen ``run_id`` if set (a resumed sweep), else create the parent run; returns its id."""

        def _open() -> str:
            c = self._client
            if self.run_id:
                c.update_run(self.run_id, status="RUNNING")
                return self.run_id
            exp = c.get_experiment_by_name(self.experiment)
            exp_id = (
                exp.experiment_id
                if exp is not None
                else c.create_experiment(self.experiment, artifact_location=self.artifact_location)
            )
            run = c.create_run(exp_id, run_name=run_name, tags=tags)
            from mlflow.entities import Param

            c.log_batch(run.info.run_id, params=[Param(k, str(v)[:500]) for k, v in params.items()])
            return run.info.run_id

        self.run_id = self._guard("parent run start", _open)
        return self.run_id

    @property
    def experiment_id(self) -> str | None:
        if self.run_id is None:
            return None
        return self._guard("get run", lambda: self._client.get_run(self.run_id).info.experiment_id)

    def log_metric(self, key: str, value: float, step: int) -> None:
        if self.run_id:
            self._guard("log_metric", lambda: self._client.log_metric(self.run_id, key, float(value), step=step))

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        if self.run_id:
            self._guard("log_artifact", lambda: self._client.log_artifact(self.run_id, str(path), artifact_path))

    def set_tags(self, tags: dict[str, str], run_id: str | None = None) -> None:
        rid = run_id or self.run_id
        if rid:
            for k, v in tags.items():
                self._guard("set_tag", lambda k=k, v=v: self._client.set_tag(rid, k, str(v)))

    def children(self) -> list[Any]:
        """The nested runs (trials) of this sweep, oldest first."""
        if not self.run_id:
            return []
        eid = self.experiment_id
        if eid is None:
            return []
        runs = self._guard(
            "search child runs",
            lambda: self._client.search_runs(
                [eid], filter_string=f"tags.mlflow.parentRunId = '{self.run_id}'", max_results=10000
            ),
        )
        return sorted(runs or [], key=lambda r: r.info.start_time or 0)

    def set_child_status(self, run_id: str, status: str) -> None:
        self._guard("set child status", lambda: self._client.set_terminated(run_id, status))

    def finish(self, status: str = "FINISHED") -> None:
        if self.run_id:
            self._guard("parent run end", lambda: self._client.set_terminated(self.run_id, status))


# ----------------------------------------------------------------------------- tables


def write_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], folder: Path, stem: str) -> tuple[Path, Path]:
    """``<stem>.csv`` and ``<stem>.md`` with ``columns`` (floats at 4 significant digits in Markdown)."""
    folder.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = folder / f"{stem}.csv", folder / f"{stem}.md"
    with csv_path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({c: r.get(c, "") for c in columns})

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return "" if v != v else f"{v:.4g}"  # NaN -> empty cell
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    md_path.write_text("\n".join(lines) + "\n")
    return csv_path, md_path


def parse_floats(text: str, what: str) -> list[float]:
    """'1e-4,5e-4' -> [1e-4, 5e-4] with an error naming the flag."""
    from physdiff.errors import PhysdiffError

    try:
        out = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise PhysdiffError(f"{what}: expected comma-separated numbers, got {text!r}") from None
    if not out:
        raise PhysdiffError(f"{what}: empty list")
    return out


def parse_ints(text: str, what: str) -> list[int]:
    vals = parse_floats(text, what)
    from physdiff.errors import PhysdiffError

    if any(v != int(v) or v < 0 for v in vals):
        raise PhysdiffError(f"{what}: expected non-negative integers, got {text!r}")
    return [int(v) for v in vals]


def read_json(path: Path) -> dict[str, Any]:
    from physdiff.errors import PhysdiffError

    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise PhysdiffError(f"{path}: cannot read ({e})") from None


def write_json(path: Path, obj: Any) -> None:
    """Atomic JSON write (temporary name, then rename)."""
    from physdiff.fileio import atomic_write_json

    atomic_write_json(path, obj, sort_keys=True)


def unique(seq: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for x in seq:
        if x not in out:
            out.append(x)
    return out
