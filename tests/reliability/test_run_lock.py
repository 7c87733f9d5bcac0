"""Two launches of one config on one data root: one trains, the other waits (bounded) or refuses; a crash frees it.

* the lock itself (physdiff.training.runlock): held by a live process, refused to a second one with the
  holder's pid named, released by ``kill -9`` of the holder, re-entrant within a process, and not kept
  alive by a forked child (DataLoader workers, process pools);
* the real launcher: while ``physdiff launch --stage prior --local`` trains, a second identical launch
  with ``train.lock_timeout=1`` refuses in one line without touching the run, and a third one with a long
  timeout waits for the first, then finds the run finished and trains nothing. The run's
  ``metrics.jsonl`` and its MLflow metric history hold every step exactly once, and the MLflow run ends
  FINISHED (the refused launch did not mark it failed).
* ``kill -9`` of a training launch: the relaunch gets the lock at once and resumes from its checkpoint
  (a crashed or preempted run never blocks its requeue; the SLURM requeue itself is tests/reliability/
  test_preemption.py and tests/training/test_slurm.py).
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

from tests.reliability.conftest import REPO, env1, launch_cmd, max_step, wait_for

HOLD = """
import sys, time
from physdiff.training.runlock import RunLock
RunLock(sys.argv[1], timeout=5, what="holder").acquire()
print("HELD", flush=True)
time.sleep(600)
"""


def _holder(run_dir: Path) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "HELD"
    return p


def test_lock_is_refused_while_held_and_free_after_kill_9(tmp_path: Path) -> None:
    from physdiff.training.runlock import LOCK_FILE, RunLock, RunLocked, held_here

    run_dir = tmp_path / "runs" / "prior-abc"
    p = _holder(run_dir)
    try:
        t0 = time.monotonic()
        with pytest.raises(RunLocked) as e:
            RunLock(run_dir, timeout=0.6, what="prior").acquire()
        assert time.monotonic() - t0 >= 0.5  # it waited (bounded) before refusing
        msg = str(e.value)
        assert f"pid {p.pid}" in msg and str(run_dir) in msg and "train.lock_timeout" in msg and "\n" not in msg, msg
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    t0 = time.monotonic()
    with RunLock(run_dir, timeout=5) as lock:  # the kernel released the dead holder's lock
        assert time.monotonic() - t0 < 1.0 and held_here(run_dir)
        assert json.loads((run_dir / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert not held_here(run_dir) and lock is not None


def test_lock_is_reentrant_here_and_not_kept_by_a_forked_child(tmp_path: Path) -> None:
    from physdiff.training.runlock import RunLock, held_here

    run_dir = tmp_path / "run"
    outer = RunLock(run_dir, timeout=0).acquire()
    inner = RunLock(run_dir, timeout=0).acquire()  # the launcher holds it, then the engine in the same process
    inner.release()
    assert held_here(run_dir)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: wait until the parent has released, then stay alive a while
        os.close(w)
        os.read(r, 1)
        time.sleep(3)
        os._exit(0)
    try:
        os.close(r)
        outer.release()
        os.write(w, b"x")
        # Another process must get the lock while the forked child is still alive.
        probe = subprocess.run([sys.executable, "-c", "import sys; from physdiff.training.runlock import RunLock; "
                                "RunLock(sys.argv[1], timeout=1).acquire(); print('GOT')", str(run_dir)],
                               cwd=REPO, capture_output=True, text=True, timeout=60)
        assert probe.stdout.strip() == "GOT", probe.stderr
        assert os.waitpid(pid, os.WNOHANG) == (0, 0), "the child should still be running"
    finally:
        os.close(w)
        os.waitpid(pid, 0)


# ----------------------------------------------------------------------------- the launcher


def _prior_cmd(shards: Path, data: Path, *extra: str) -> list[str]:
    return launch_cmd("--stage", "prior", "--local", "--preset", "debug", "--data-root", str(data),
                      f"train.shards={shards}", "train.progress=false", "loader.num_workers=0", "train.log_every=1",
                      "train.epochs=3", "train.batches_per_epoch=12", "train.checkpoint_every=4", *extra)


def _start(cmd: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=REPO, env=env1(), stdout=log.open("w"), stderr=subprocess.STDOUT, text=True)


LONG = ("train.batches_per_epoch=40",)  # 3 epochs x 40 steps for the launch the others meet
LONG_STEPS = 120


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_second_launch_refuses_or_waits_and_nothing_is_logged_twice(debug_data: dict, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    data = tmp_path / "data"
    # long enough that the first still trains when the second has started up (36 steps did not always outlast
    # the second launch's imports: on Python 3.12 it found the run finished instead of held)
    first = _start(_prior_cmd(debug_data["shards"], data, *LONG), tmp_path / "first.log")
    runs = data / "runs"
    try:
        wait_for(lambda: runs.is_dir() and any(max_step(d) >= 2 for d in runs.glob("prior-*")), 300,
                 "the first launch to train 2 steps", poll=0.2)
        (run_dir,) = list(runs.glob("prior-*"))
        # A second identical launch that will not wait long: one line, exit 2, the run untouched.
        refused = subprocess.run(_prior_cmd(debug_data["shards"], data, *LONG, "train.lock_timeout=1"), cwd=REPO, env=env1(),
                                 capture_output=True, text=True, timeout=300)
        assert first.poll() is None, "the first launch ended before the second one was tried"
        assert refused.returncode == 2, refused.stderr[-3000:]
        last = refused.stderr.strip().splitlines()[-1]
        assert last.startswith("error: run folder") and "is in use by pid" in last and str(first.pid) in last, last
        assert "Traceback" not in refused.stderr
        # A third one that waits: it starts now and ends after the first, having trained nothing.
        waiter = _start(_prior_cmd(debug_data["shards"], data, *LONG, "train.lock_timeout=400"), tmp_path / "waiter.log")
        assert first.wait(timeout=400) == 0, (tmp_path / "first.log").read_text()[-3000:]
        assert waiter.wait(timeout=400) == 0, (tmp_path / "waiter.log").read_text()[-3000:]
    finally:
        for p in (first,):
            if p.poll() is None:
                p.kill()
    waited = (tmp_path / "waiter.log").read_text()
    assert "is in use by pid" in waited and "waiting up to 400 s" in waited, waited[-2000:]
    assert "finished prior-" in waited and "resumed from" not in waited, waited[-2000:]

    done = json.loads((run_dir / "DONE.json").read_text())
    assert done["step"] == LONG_STEPS
    rows = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if "train/loss" in r]
    assert steps == list(range(1, LONG_STEPS + 1)), steps  # each step once: one process trained
    c = MlflowClient(f"sqlite:///{data / 'mlflow.db'}")
    rid = json.loads((run_dir / "mlflow.json").read_text())[f"sqlite:///{data / 'mlflow.db'}"]
    hist = [m.step for m in c.get_metric_history(rid, "train/loss")]
    assert sorted(hist) == list(range(1, LONG_STEPS + 1)), hist
    assert c.get_run(rid).info.status == "FINISHED"
    assert len(c.search_runs([c.get_run(rid).info.experiment_id])) == 1  # no second MLflow run either


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_kill_9_of_a_training_launch_does_not_block_its_relaunch(debug_data: dict, tmp_path: Path) -> None:
    data = tmp_path / "data"
    cmd = _prior_cmd(debug_data["shards"], data, "tracking.enabled=false")
    first = _start(cmd, tmp_path / "first.log")
    runs = data / "runs"
    try:
        wait_for(lambda: runs.is_dir() and any((d / "checkpoints" / "step_00000004").is_dir() for d in runs.glob("prior-*")),
                 300, "the first checkpoint", poll=0.1)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    t0 = time.monotonic()
    again = subprocess.run([*cmd, "train.lock_timeout=2"], cwd=REPO, env=env1(), capture_output=True, text=True,
                           timeout=400)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "is in use" not in again.stdout + again.stderr
    assert "resumed from" in again.stderr and "finished prior-" in again.stdout, again.stderr[-2000:]
    assert time.monotonic() - t0 < 400
