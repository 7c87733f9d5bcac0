"""Fixtures for the sweep tests: debug shards of the generated world, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sweeps.world import build_debug_shards


@pytest.fixture(scope="session")
def debug_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_debug_shards(tmp_path_factory.mktemp("sweepworld"))


@pytest.fixture(scope="session")
def sweep4(debug_shards: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A real 4-trial sweep (M in {0, 25} x lr in {1e-3, 3e-3}, 2 at a time, per-M ASHA) of the ``tiny`` prior
    (the issue's preset; 2 transformer layers, d_model 64) on the debug world's shards (debug = tiny's audio)."""
    import subprocess
    import sys
    import time

    from tests.sweeps.world import REPO, clean_env

    data = tmp_path_factory.mktemp("sweep4") / "data"
    cmd = [sys.executable, "sweeps/residual_dims.py", "--preset", "tiny", "--dims", "0,25", "--lr", "1e-3,3e-3",
           "--max-concurrent", "2", "--num-cpus", "4", "--grace-period", "1", "--name", "s4",
           "--test", f"train.shards={debug_shards}", "train.epochs=3"]
    t0 = time.time()
    p = subprocess.run(cmd, cwd=REPO, env=clean_env(data), capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, f"sweep failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-5000:]}"
    return {"data": data, "dir": data / "sweeps" / "s4", "uri": f"sqlite:///{data / 'mlflow.db'}",
            "stdout": p.stdout, "stderr": p.stderr, "seconds": time.time() - t0}
