"""The MLflow UI, served by cluster/mlflow_server.py on 127.0.0.1, shows the sweep and its trial runs in a real
headless Chromium (Debian's ``chromium``, installed here with apt-get when missing and we are root)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sweeps.world import REPO

pytestmark = pytest.mark.timeout(300)

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def ensure_chromium() -> str:
    """Debian's chromium: present, or installed with apt-get (root, ≈ 10 s, ≈ 400 MB); else a clear failure."""
    exe = shutil.which("chromium")
    if exe:
        return exe
    if os.geteuid() != 0:
        pytest.fail("the MLflow UI test needs Debian's `chromium`; install it with "
                    "`sudo apt-get install -y --no-install-recommends chromium` (not root here, so the test cannot)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:  # a fresh image has no package lists yet
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, text=True, timeout=600)
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    exe = shutil.which("chromium")
    if not exe:
        pytest.fail(f"could not install chromium with apt-get (exit {p.returncode}):\n{p.stderr[-2000:]}")
    return exe


def chromium(exe: str, url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    # The UI is a React app that fetches runs after load: a virtual-time budget lets it render first.
    args = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=20000", *extra, url]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def test_mlflow_ui_shows_the_sweep_and_its_trials(sweep4: dict, tmp_path: Path, artifacts_dir: Path) -> None:
    exe = ensure_chromium()
    from mlflow.tracking import MlflowClient

    setup = json.loads((sweep4["dir"] / "sweep.json").read_text())
    c = MlflowClient(sweep4["uri"])
    parent = c.get_run(setup["parent_run_id"])
    exp_id = parent.info.experiment_id
    kids = c.search_runs([exp_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    names = [parent.info.run_name] + [k.info.run_name for k in kids]
    assert len(names) == 5

    env = dict(os.environ, PHYSDIFF_DATA=str(sweep4["data"]))
    state = tmp_path / "server"
    start = subprocess.run([sys.executable, "cluster/mlflow_server.py", "start", "--state", str(state)], cwd=REPO,
                           env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert start.returncode == 0, start.stderr
    uri = start.stdout.strip()
    try:
        assert uri.startswith("http://127.0.0.1:")
        # Sorted by name the table lists nested runs flat (by date it folds children under their parent).
        url = f"{uri}/#/experiments/{exp_id}/runs?orderByKey=attributes.run_name&orderByAsc=true"
        dom = chromium(exe, url, tmp_path / "profile", "--dump-dom")
        assert dom.returncode == 0, dom.stderr[-2000:]
        page = artifacts_dir / "mlflow-ui-runs.html"
        page.write_text(dom.stdout)
        missing = [n for n in names if n not in dom.stdout]
        assert not missing, f"run names not in the rendered page: {missing} (DOM saved to {page})"
        shot = artifacts_dir / "mlflow-ui-runs.png"  # the test artifact: kept after the run
        shot.unlink(missing_ok=True)
        sc = chromium(exe, url, tmp_path / "profile2", "--window-size=1400,900", f"--screenshot={shot}")
        assert sc.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", sc.stderr[-2000:]
        assert shot.stat().st_size > 20_000  # a rendered table, not a blank page
    finally:
        subprocess.run([sys.executable, "cluster/mlflow_server.py", "stop", "--state", str(state)], cwd=REPO, env=env,
                       capture_output=True, timeout=60)
