"""``physdiff launch --dry-run`` writes nothing: not under the data root, not in the jobs folder, not in HOME.

Each command runs against a data root that already holds a world and its shards (so the checks have manifests
to read) and against one that does not exist yet. Every file under the data root is snapshotted (name,
size, mtime_ns) before and after; a data root that did not exist must still not exist; the jobs folder
(``<data>/jobs``, where submitit would put its pickles) must not appear. ``HOME`` points at an empty folder
that must stay empty. Single stages (a training stage through the checks and the sbatch script, a data
stage, a task stage) and the whole pipeline, here and on SLURM.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reliability.conftest import REPO

pytestmark = pytest.mark.timeout(600)

COMMANDS = {
    "prior": ["--stage", "prior", "--gpus", "2", "--partition", "gpu"],
    "prior-cpu": ["--stage", "prior", "--cpu", "--procs", "2"],
    "prior-local": ["--stage", "prior", "--local"],
    "diffusion": ["--stage", "diffusion", "--gpus", "1"],
    "world": ["--stage", "world", "--local"],
    "shards": ["--stage", "shards", "--local"],
    "generate": ["--stage", "generate", "--local"],
    "all-slurm": ["--stage", "all", "--gpus", "8"],
    "all-local": ["--stage", "all", "--local"],
}


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def populated(debug_data: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the session's debug data root (world + shards where the stages look for them)."""
    root = tmp_path_factory.mktemp("dry") / "data"
    shutil.copytree(debug_data["root"], root, symlinks=True)
    return root


@pytest.mark.parametrize("name", COMMANDS)
def test_dry_run_writes_nothing(populated: Path, tmp_path: Path, name: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    fresh = tmp_path / "fresh-data"
    env = dict(os.environ, HOME=str(home), OMP_NUM_THREADS="1")
    env.pop("MLFLOW_TRACKING_URI", None)
    for root in (populated, fresh):
        before = _tree(populated)
        p = subprocess.run([sys.executable, "cluster/launch.py", *COMMANDS[name], "--dry-run", "--preset", "debug",
                            "--data-root", str(root)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr[-3000:]
        assert p.stdout.strip(), "a dry run prints what it would do"
        assert _tree(populated) == before, "the dry run changed the data root"
        assert not (populated / "jobs").exists()
        assert not fresh.exists(), sorted(str(x) for x in fresh.rglob("*"))
        assert not list(home.iterdir()), sorted(str(x) for x in home.rglob("*"))
