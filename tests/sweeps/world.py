"""The generated world's debug shards for the sweep and tracking tests, built by the real entry points."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def build_debug_shards(root: Path) -> Path:
    """``shards/synth.py`` then ``shards/build.py`` with the debug preset (≈ 10 s); returns the shard root."""
    world, shards = root / "world", root / "shards"
    env = dict(os.environ, PHYSDIFF_DATA=str(root / "data"))
    for cmd in (
        [sys.executable, "shards/synth.py", "--out", str(world), "--preset", "debug", "--seed", "0"],
        [sys.executable, "shards/build.py", "--source", str(world), "--out", str(shards), "--preset", "debug"],
    ):
        p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, f"{' '.join(cmd[1:3])} failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}"
    assert (shards / "train" / "manifest.json").exists() and (shards / "test" / "manifest.json").exists()
    return shards


def clean_env(data: Path, **extra: str) -> dict[str, str]:
    """Environment for a subprocess: its own data folder, local Ray without token auth, no inherited MLflow URI."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS")}
    env.update(PHYSDIFF_DATA=str(data), RAY_AUTH_MODE="disabled", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env
