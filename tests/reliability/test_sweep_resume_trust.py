"""``sweep --resume`` runs nothing from a file: only a sweep folder this tool wrote for this user is restored.

Ray Tune's ``Tuner.restore`` unpickles ``tune/tuner.pkl`` (and the cloudpickle blobs of the experiment
state). A crafted folder whose ``tuner.pkl`` would run ``touch PWNED`` must be refused in one line before
anything is unpickled, with or without a ``sweep.digest`` (a digest made with another key does not help).
A real sweep signs its files as it writes them and resumes; changing one byte of its experiment state
afterwards makes the resume refuse. The per-user secret is created 0600 and refused when others can read it.
"""

from __future__ import annotations

import json
import os
import pickle
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sweeps.world import clean_env
from tests.reliability.conftest import REPO


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _crafted_sweep(data: Path, name: str, marker: Path) -> Path:
    """A sweep folder as someone else could hand it over: a plausible sweep.json, a booby-trapped tuner.pkl."""
    sweep = data / "sweeps" / name
    (sweep / "tune").mkdir(parents=True)
    from physdiff.config import resolve_config

    setup = {"name": name, "study": {"dims": [0], "lrs": [1e-3], "seed": 0, "num_samples": 1, "max_concurrent": 0,
                                     "asha": False, "asha_scope": "per-m", "grace_period": 1, "reduction_factor": 3,
                                     "max_failures": 0},
             "base_config": resolve_config("debug").to_dict(), "created": 0, "tracking_uri": f"sqlite:///{data}/m.db",
             "experiment": "x", "cpus_per_trial": 1, "gpus_per_trial": 0, "parent_run_id": "", "command": "x"}
    (sweep / "sweep.json").write_text(json.dumps(setup))
    (sweep / "tune" / "tuner.pkl").write_bytes(pickle.dumps(_Exploit(marker)))
    (sweep / "tune" / "experiment_state-2026-01-01_00-00-00.json").write_text('{"trial_data": []}')
    return sweep


def _resume(data: Path, name: str, secret: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "sweeps/residual_dims.py", "--resume", "--name", name, "--num-cpus", "1"],
                          cwd=REPO, env=clean_env(data, PHYSDIFF_SECRET_DIR=str(secret)), capture_output=True, text=True,
                          timeout=300)


@pytest.mark.timeout(400)
def test_resume_of_a_crafted_sweep_folder_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    data, marker = tmp_path / "data", tmp_path / "PWNED"
    sweep = _crafted_sweep(data, "crafted", marker)
    p = _resume(data, "crafted", tmp_path / "secret")
    assert not marker.exists(), "the crafted tuner.pkl ran"
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-3000:]
    line = p.stderr.strip().splitlines()[-1]
    assert line.startswith("error: refusing to resume") and "sweep.digest" in line, line

    # A digest computed with another user's key (here: a key in another secret folder) is no better.
    from physdiff.sweeps import trust

    env = dict(os.environ, PHYSDIFF_SECRET_DIR=str(tmp_path / "other-secret"))
    subprocess.run([sys.executable, "-c", f"from physdiff.sweeps import trust; trust.sign_sweep({str(sweep)!r})"],
                   cwd=REPO, env=env, check=True, timeout=120)
    assert (sweep / trust.DIGEST).is_file()
    p = _resume(data, "crafted", tmp_path / "secret")
    assert not marker.exists() and p.returncode == 2, p.stderr[-3000:]
    line = p.stderr.strip().splitlines()[-1]
    assert "does not match the digest" in line and "sweep.json" in line, line


def test_secret_is_private_and_a_readable_one_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from physdiff.errors import PhysdiffError
    from physdiff.sweeps import trust

    monkeypatch.setenv("PHYSDIFF_SECRET_DIR", str(tmp_path / "s"))
    key = trust.secret_key()
    path = tmp_path / "s" / trust.KEY_FILE
    assert len(key) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "s").stat().st_mode) == 0o700
    assert trust.secret_key() == key  # created once, then reused
    path.chmod(0o644)
    with pytest.raises(PhysdiffError, match="readable by others"):
        trust.secret_key()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_real_sweep_resumes_and_a_changed_state_file_is_refused(tmp_path: Path) -> None:
    from tests.sweeps.world import build_debug_shards

    shards = build_debug_shards(tmp_path / "world")
    data, secret = tmp_path / "data", tmp_path / "secret"
    env = clean_env(data, PHYSDIFF_SECRET_DIR=str(secret))
    cmd = [sys.executable, "sweeps/residual_dims.py", "--name", "s1", "--num-cpus", "1", "--preset", "debug", "--dims", "0",
           "--lr", "1e-3", "--no-asha", f"train.shards={shards}", "train.epochs=1"]
    p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert p.returncode == 0, p.stderr[-3000:]
    sweep = data / "sweeps" / "s1"
    from physdiff.sweeps import trust

    digest = json.loads((sweep / trust.DIGEST).read_text())["files"]
    restored = {f.relative_to(sweep).as_posix() for f in trust.restored_files(sweep)}
    assert {"sweep.json", "tune/tuner.pkl"} <= restored and any(n.startswith("tune/experiment_state-") for n in restored)
    assert restored <= set(digest), restored - set(digest)  # every file a resume reads was signed as it was written

    p = _resume(data, "s1", secret)
    assert p.returncode == 0, p.stderr[-3000:]  # this tool's own folder resumes (a finished sweep: nothing to run)

    state = next((sweep / "tune").glob("experiment_state-*.json"))
    text = state.read_text()
    state.write_text(text + " ")  # still valid JSON, one byte more
    p = _resume(data, "s1", secret)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-3000:]
    line = p.stderr.strip().splitlines()[-1]
    assert "refusing to resume" in line and state.name in line, line
