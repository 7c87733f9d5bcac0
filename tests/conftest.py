"""Shared fixtures: the repo root, a real single-node SLURM cluster, and CPU-friendly torch settings."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Tests share 2 cores with each other's subprocesses: keep intra-op threads modest.
os.environ.setdefault("OMP_NUM_THREADS", "2")
# Ray writes a token file and enforces auth by default; tests run it locally only.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def slurm_cluster() -> dict:
    """Start (or reuse) the single-node SLURM on 127.0.0.1 from cluster/slurm_local/start.sh.

    Real slurmctld + slurmd + munge; submitit's AutoExecutor finds it through sbatch on PATH.
    The cluster is left running when the session ends only if it was already running before.
    """
    state = os.environ.get("PHYSDIFF_SLURM_DIR", "/tmp/physdiff-slurm")
    was_up = subprocess.run(["bash", "-c", "timeout 5 sinfo -h -o %T 2>/dev/null | grep -qE 'idle|mixed|alloc'"]).returncode == 0
    proc = subprocess.run(["bash", str(REPO / "cluster/slurm_local/start.sh")], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        pytest.fail(f"could not start the local SLURM cluster:\n{proc.stdout}\n{proc.stderr}")
    yield {"state_dir": state, "partition": "debug"}
    if not was_up:
        subprocess.run(["bash", str(REPO / "cluster/slurm_local/stop.sh")], capture_output=True, timeout=60)
