"""Data faults while the diffusion stage trains on 2 CPU processes (``launch.py --cpu --procs 2``).

The train split is re-sharded to 3 shards of 3 clips. Default (``loader.skip_corrupt=false``): a shard
truncated while training runs, or one whose middle sample has a damaged audio member, stops the run
with one ``error:`` line naming the shard and a non-zero exit; the other rank does not hang (the whole
launch is bounded by a timeout, and no training process is left behind). With
``loader.skip_corrupt=true`` both faults are skipped, counted in the logs, and training completes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.reliability.conftest import REPO, env1, launch_cmd, max_step, wait_for
from tests.reliability.shardtools import damage_member, reshard, truncate

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]
BOUND_S = 240  # a hang of the other rank would run into this


def _setup(diff_env: dict, tmp_path: Path) -> tuple[list[str], list[Path], Path]:
    shards = reshard(diff_env["shards"], tmp_path / "shards", per_shard=3)
    assert len(shards) == 3
    data = tmp_path / "data"
    args = ["--stage", "diffusion", "--cpu", "--procs", "2", "--preset", "debug", "--data-root", str(data),
            *diff_env["overrides"], f"train.shards={tmp_path / 'shards'}", "tracking.enabled=false",
            "train.epochs=3", "train.batches_per_epoch=3"]
    return args, shards, data


def _run_dir(data: Path) -> Path | None:
    runs = list((data / "runs").glob("diffusion-*")) if (data / "runs").exists() else []
    return runs[0] if runs else None


def _leftover_ranks(data: Path) -> list[str]:
    """Training processes of this data root still alive (cmdlines naming its launch config)."""
    alive = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                state = (p / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if str(data) in cmd and "physdiff.launch.worker" in cmd and state != "Z":
                alive.append(f"{p.name}: {cmd[:200]}")
    return alive


def _run_with_live_fault(args: list[str], data: Path, fault) -> tuple[subprocess.CompletedProcess, float]:
    """Launch; once the first optimiser step is logged, apply ``fault()``; wait (bounded) for the end."""
    t0 = time.time()
    proc = subprocess.Popen(launch_cmd(*args), cwd=REPO, env=env1(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        wait_for(lambda: proc.poll() is not None or ((rd := _run_dir(data)) is not None and max_step(rd) >= 1),
                 BOUND_S, "the first training step")
        assert proc.poll() is None, "training ended before the fault was applied:\n" + proc.stderr.read()[-3000:]
        fault()
        out, err = proc.communicate(timeout=BOUND_S)
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)  # only this launch's own process group
        proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), time.time() - t0


def _assert_one_line_error(p: subprocess.CompletedProcess, *needles: str) -> str:
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    shown = p.stderr[-4000:]
    assert p.returncode != 0, shown
    assert lines and lines[-1].startswith("error: "), shown
    for n in needles:
        assert n in lines[-1], f"{n!r} not in the error line\n{shown}"
    return lines[-1]


def test_truncated_shard_mid_training_is_a_clear_error_without_hang(diff_env: dict, tmp_path: Path) -> None:
    args, shards, data = _setup(diff_env, tmp_path)
    victim = shards[1]
    p, secs = _run_with_live_fault(args, data, lambda: truncate(victim))
    line = _assert_one_line_error(p, str(victim), "truncated")
    print(f"{secs:.1f} s: {line}")
    assert not _leftover_ranks(data), _leftover_ranks(data)
    assert "Traceback (most recent call last)" not in p.stderr.split("[default")[-1]  # launch's own tail


def test_corrupt_member_mid_training_is_a_clear_error_without_hang(diff_env: dict, tmp_path: Path) -> None:
    args, shards, data = _setup(diff_env, tmp_path)
    victim = shards[0]
    keys: list[str] = []
    p, secs = _run_with_live_fault(args, data, lambda: keys.append(damage_member(victim, sample=1)))
    line = _assert_one_line_error(p, str(victim), f"corrupt sample {keys[0]}")
    print(f"{secs:.1f} s: {line}")
    assert not _leftover_ranks(data), _leftover_ranks(data)


def test_skip_corrupt_counts_both_faults_and_completes(diff_env: dict, tmp_path: Path) -> None:
    import json

    args, shards, data = _setup(diff_env, tmp_path)
    truncate(shards[1])
    key = damage_member(shards[0], sample=1)
    p = subprocess.run(launch_cmd(*args, "loader.skip_corrupt=true"), cwd=REPO, env=env1(), capture_output=True,
                       text=True, timeout=BOUND_S)
    assert p.returncode == 0, p.stderr[-4000:]
    run_dir = _run_dir(data)
    done = json.loads((run_dir / "DONE.json").read_text())
    assert done["step"] == 9 and done["world_size"] == 2
    skips = [l for l in p.stderr.splitlines() if "[reader] skip " in l]
    assert any(str(shards[1]) in l and "truncated" in l for l in skips), p.stderr[-4000:]
    assert any(f"corrupt sample {key}" in l and str(shards[0]) in l for l in skips), p.stderr[-4000:]
    # Counted: each notice carries its running count per rank (1, 2, ... on that rank).
    assert all(l.split("[reader] skip ", 1)[1].split()[0].isdigit() for l in skips)
