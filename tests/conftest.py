"""Shared fixtures: the repo root, a real single-node SLURM cluster, and CPU-friendly torch settings."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Tests share 2 cores with each other's subprocesses: keep intra-op threads modest, and never let
# OpenMP threads spin-wait (see physdiff/__init__.py: ~30x slower small ops on a busy 2-core box).
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Ray writes a token file and enforces auth by default; tests run it locally only.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests keep what a person may want to look at afterwards (screenshots, rendered pages):
    $PHYSDIFF_TEST_ARTIFACTS, else ``data/test-artifacts`` in the checkout (git-ignored, kept after the run,
    unlike pytest's temporary folders)."""
    path = Path(os.environ.get("PHYSDIFF_TEST_ARTIFACTS") or REPO / "data" / "test-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


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


@pytest.fixture(scope="session")
def debug_data(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A data root holding a generated ``debug`` world and its shards where the stages look for them.

    Built once per session (≈ 10-20 s on 2 cores) and shared by the stage tests (video, diffusion,
    index, generate, evaluate). Returns ``{"root", "overrides", "world", "shards", "cfg"}``; pass
    ``overrides`` to ``resolve_config("debug", overrides)`` / launch.py to point a run at it.
    """
    from physdiff.config import resolve_config
    from physdiff.data.build import build_shards
    from physdiff.stages import shards_dir, world_dir
    from physdiff.world import generate_world

    root = tmp_path_factory.mktemp("debug-data")
    overrides = [f"paths.data_root={root}"]
    cfg = resolve_config("debug", overrides)
    world = world_dir(cfg)
    generate_world(world, cfg.world, cfg.seed, progress=False)
    shards = shards_dir(cfg)
    summary = build_shards(world, shards, cfg, workers=1)
    assert summary["written"] > 0 and summary["written"] + summary["skipped"] == summary["annotated"]
    return {"root": root, "overrides": overrides, "world": world, "shards": shards, "cfg": cfg}
