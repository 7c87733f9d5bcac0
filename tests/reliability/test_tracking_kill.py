"""The MLflow server is SIGKILLed (whole process group) while the diffusion stage trains in another process.

The server is the real ``mlflow server`` started by cluster/mlflow_server.py on 127.0.0.1 (its live
listening sockets are checked: loopback only). Training runs through ``launch.py --local`` as its own
process. After the kill: training completes (exit 0, DONE.json), every step's metrics are in the run
folder's ``metrics.jsonl``, the failure is reported once, and what reached the server before the kill
is in its store. (tests/tracking covers a clean server stop inside the prior stage; this is a kill -9.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.reliability.conftest import REPO, env1, launch_cmd, max_step, run_dir_from, wait_for
from tests.reliability.netprobe import descendants, is_loopback, listening

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]


def test_mlflow_server_killed_mid_run_training_completes_metrics_local(diff_env: dict, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    state, db = tmp_path / "server", tmp_path / "srv.db"
    start = subprocess.run([sys.executable, "cluster/mlflow_server.py", "start", "--state", str(state),
                            "--backend-store-uri", f"sqlite:///{db}", "--artifacts-destination", str(tmp_path / "art")],
                           cwd=REPO, capture_output=True, text=True, timeout=180)
    assert start.returncode == 0, start.stderr[-3000:]
    info = json.loads((state / "server.json").read_text())
    uri = info["uri"]
    proc = None
    try:
        addrs = listening(descendants(info["pid"]))
        assert addrs and all(is_loopback(a) for a in addrs), f"the MLflow server listens beyond 127.0.0.1: {addrs}"

        data = tmp_path / "data"
        proc = subprocess.Popen(launch_cmd("--stage", "diffusion", "--local", "--preset", "debug", "--data-root",
                                           str(data), "--tracking-uri", uri, *diff_env["overrides"],
                                           f"train.shards={diff_env['shards']}", "train.epochs=2",
                                           "train.batches_per_epoch=4"),
                                cwd=REPO, env=env1(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        rd: list[Path] = []

        def step2() -> bool:
            if proc.poll() is not None:
                return True
            if not rd:
                found = list((data / "runs").glob("diffusion-*")) if (data / "runs").exists() else []
                rd.extend(found[:1])
            return bool(rd) and max_step(rd[0]) >= 2

        wait_for(step2, 300, "step 2 of the run")
        assert proc.poll() is None, "finished before the kill:\n" + proc.stderr.read()[-3000:]
        os.killpg(info["pgid"], signal.SIGKILL)  # the server and its workers, at once
        out, err = proc.communicate(timeout=300)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.communicate()
        subprocess.run([sys.executable, "cluster/mlflow_server.py", "stop", "--state", str(state)], cwd=REPO,
                       capture_output=True, timeout=60)
    assert proc.returncode == 0, err[-3000:]
    run_dir = run_dir_from(out)
    done = json.loads((run_dir / "DONE.json").read_text())
    assert done["step"] == 8 and done["epoch"] == 2
    rows = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines() if l.strip()]
    assert sorted({r["step"] for r in rows if "train/loss" in r}) == list(range(1, 9))
    assert any("val/denoise_loss" in r for r in rows)
    assert err.count(f"MLflow tracking at {uri} failed") == 1, err[-3000:]
    # What the server stored before it died (read straight from its database).
    c = MlflowClient(f"sqlite:///{db}")
    runs = c.search_runs([c.get_experiment_by_name("physdiff").experiment_id])
    assert len(runs) == 1
    logged = {m.step for m in c.get_metric_history(runs[0].info.run_id, "train/loss")}
    assert logged and logged < set(range(1, 9)), logged
