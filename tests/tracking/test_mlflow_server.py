"""cluster/mlflow_server.py: a real ``mlflow server`` (SQLite + proxied artifacts) on 127.0.0.1, start/status/stop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.sweeps.world import REPO

pytestmark = pytest.mark.timeout(240)


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "cluster/mlflow_server.py", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env=env)


def test_server_start_log_through_proxy_stop(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    env = dict(os.environ, PHYSDIFF_DATA=str(tmp_path / "data"))
    env.pop("MLFLOW_TRACKING_URI", None)
    state = tmp_path / "state"
    # An experiment the embedded store made earlier (local file:// artifacts): start says it bypasses the proxy.
    (tmp_path / "data").mkdir()
    embedded = MlflowClient(f"sqlite:///{tmp_path / 'data' / 'mlflow.db'}")
    embedded.create_experiment("made-embedded", artifact_location=(tmp_path / "data" / "mlartifacts").as_uri())
    p = _cli("start", "--state", str(state), env=env)
    assert p.returncode == 0, p.stderr
    assert "write artifacts directly" in p.stderr and "'made-embedded'" in p.stderr, p.stderr
    uri = p.stdout.strip()
    st = json.loads((state / "server.json").read_text())
    try:
        assert uri == st["uri"] and st["host"] == "127.0.0.1"  # bound to this machine only by default
        assert st["backend_store_uri"] == f"sqlite:///{tmp_path / 'data' / 'mlflow.db'}"
        # Listening on 127.0.0.1 only: the socket table has no wildcard listener on this port.
        listen = subprocess.run(["bash", "-c", f"cat /proc/net/tcp | awk '$4 == \"0A\"' | grep -i ':{st['port']:04X} '"],
                                capture_output=True, text=True).stdout
        assert listen and all(line.split()[1].startswith("0100007F:") for line in listen.strip().splitlines()), listen
        status = _cli("status", "--state", str(state), env=env)
        assert status.returncode == 0 and json.loads(status.stdout)["healthy"] is True
        again = _cli("start", "--state", str(state), env=env)  # a second start reuses the running server
        assert again.returncode == 0 and again.stdout.strip() == uri and "already running" in again.stderr

        # A client talks REST only; its artifact goes through the server's proxy into the destination.
        c = MlflowClient(uri)
        exp = c.create_experiment("proxy-check")
        assert c.get_experiment(exp).artifact_location.startswith("mlflow-artifacts:")
        run = c.create_run(exp, run_name="r1")
        c.log_metric(run.info.run_id, "m", 1.5, step=3)
        (tmp_path / "note.txt").write_text("hello")
        c.log_artifact(run.info.run_id, str(tmp_path / "note.txt"))
        stored = list((tmp_path / "data" / "mlartifacts").rglob("note.txt"))
        assert len(stored) == 1 and stored[0].read_text() == "hello"
        assert c.get_metric_history(run.info.run_id, "m")[0].value == 1.5
    finally:
        stop = _cli("stop", "--state", str(state), env=env)
    assert stop.returncode == 0 and stop.stdout.strip() == "stopped"
    deadline = time.time() + 10
    while time.time() < deadline and Path(f"/proc/{st['pid']}").exists() and \
            Path(f"/proc/{st['pid']}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        time.sleep(0.2)
    alive = Path(f"/proc/{st['pid']}").exists() and Path(f"/proc/{st['pid']}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    assert not alive, "the server process survived stop"
    # Its whole process group is gone (gunicorn/uvicorn workers included).
    group = subprocess.run(["ps", "-o", "pid=,stat=", "-g", str(st["pgid"])], capture_output=True, text=True).stdout
    assert all("Z" in line.split()[1] for line in group.strip().splitlines() if line.strip()), group
    assert _cli("status", "--state", str(state), env=env).returncode == 1


def test_parent_run_survives_a_dead_server(tmp_path: Path) -> None:
    """The sweep's own MLflow calls (physdiff.sweeps.tune.ParentRun) warn once and carry on."""
    from physdiff.sweeps import tune as tc

    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    parent = tc.ParentRun(f"http://127.0.0.1:{port}", "physdiff")
    with pytest.warns(RuntimeWarning, match="the sweep continues") as rec:
        assert parent.open("sweep-x", {}, {"a": 1}) is None
        parent.log_metric("x", 1.0, step=0)
        parent.log_artifact(tmp_path)
        parent.finish()
    assert len([w for w in rec if "MLflow" in str(w.message)]) == 1
