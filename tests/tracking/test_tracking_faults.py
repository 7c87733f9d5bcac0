"""Training never dies because tracking does (physdiff.training.tracking under the real prior stage).

* an unreachable tracking server from the start: training finishes, warns once, keeps metrics locally;
* a server killed mid-run (the real ``mlflow server`` from cluster/mlflow_server.py): the same, and
  the epochs logged before the kill are in MLflow.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from tests.sweeps.world import REPO

pytestmark = pytest.mark.timeout(300)


def _cfg(shards: Path, data: Path, uri: str, epochs: int = 2):
    from physdiff.config import resolve_config

    return resolve_config("debug", {"train.shards": str(shards), "paths.data_root": str(data), "train.epochs": epochs,
                                    "train.progress": False, "tracking.tracking_uri": uri})


def _train(cfg, report_fn=None):
    from physdiff.stages import get_recipe
    from physdiff.training.trainer import train

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(cfg, get_recipe("prior"), report_fn=report_fn, cpu=True)
    return result, [w for w in caught if issubclass(w.category, RuntimeWarning) and "MLflow" in str(w.message)]


def _val_epochs(run_dir: Path) -> list[int]:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    return [r["epoch"] for r in rows if "val/mrstft_full" in r]


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


def test_unreachable_server_does_not_stop_training(tracking_shards: Path, tmp_path: Path) -> None:
    uri = f"http://127.0.0.1:{_closed_port()}"
    result, warned = _train(_cfg(tracking_shards, tmp_path / "data", uri))
    assert result.status == "finished" and result.epoch == 2
    assert result.mlflow_run_id is None
    assert len(warned) == 1, [str(w.message) for w in warned]  # warns once, not per metric
    assert uri in str(warned[0].message) and "metrics.jsonl" in str(warned[0].message)
    assert _val_epochs(result.run_dir) == [1, 2]
    assert (result.run_dir / "DONE.json").exists()


def test_server_killed_mid_run_does_not_stop_training(tracking_shards: Path, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    state = tmp_path / "server"
    env_data = tmp_path / "data"
    start = subprocess.run([sys.executable, "cluster/mlflow_server.py", "start", "--state", str(state),
                            "--backend-store-uri", f"sqlite:///{tmp_path / 'srv.db'}",
                            "--artifacts-destination", str(tmp_path / "srv-artifacts")],
                           cwd=REPO, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert start.returncode == 0, start.stderr
    uri = start.stdout.strip().splitlines()[-1]
    assert uri.startswith("http://127.0.0.1:")
    killed = []

    def kill_after_first_epoch(metrics: dict, ckpt: Path | None) -> None:
        if metrics["epoch"] == 1:
            stop = subprocess.run([sys.executable, "cluster/mlflow_server.py", "stop", "--state", str(state)],
                                  cwd=REPO, capture_output=True, text=True, timeout=60)
            killed.append(stop.stdout.strip())

    try:
        result, warned = _train(_cfg(tracking_shards, env_data, uri, epochs=3), kill_after_first_epoch)
    finally:
        subprocess.run([sys.executable, "cluster/mlflow_server.py", "stop", "--state", str(state)], cwd=REPO,
                       capture_output=True, timeout=60)
    assert killed == ["stopped"]
    assert result.status == "finished" and result.epoch == 3
    assert len(warned) == 1 and uri in str(warned[0].message)
    assert _val_epochs(result.run_dir) == [1, 2, 3]  # every epoch kept locally
    # What reached the server before it died is in its store (read directly: the server is gone).
    c = MlflowClient(f"sqlite:///{tmp_path / 'srv.db'}")
    (run,) = c.search_runs([c.get_experiment_by_name("physdiff").experiment_id])
    assert run.info.run_id == result.mlflow_run_id
    assert [m.step for m in c.get_metric_history(run.info.run_id, "val/mrstft_full")] == [_step_of(result.run_dir, 1)]


def _step_of(run_dir: Path, epoch: int) -> int:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]
    return next(r["step"] for r in rows if r["epoch"] == epoch and "val/mrstft_full" in r)
