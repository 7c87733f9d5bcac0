"""kill -9 of the diffusion stage while it writes a checkpoint: resume from the previous complete one.

The training process (``python -m physdiff.launch.worker --stage diffusion``) checkpoints every step;
the test watches the checkpoint folder and sends SIGKILL the moment a write is in progress (a
``.step_*.<token>.tmp`` folder exists next to a complete ``step_*``). What the kill leaves is checked: the
partial folder is there and is not a complete checkpoint. The relaunch must sweep it, resume from the
newest complete checkpoint, and finish with weights equal (bitwise) to an uninterrupted run's.
The U-Net is widened (``diffusion.width=32``, ~40 MB per checkpoint) so a write lasts long enough.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from physdiff.fileio import is_temp
from tests.reliability.conftest import REPO, assert_same_weights, env1, final_model

pytestmark = [pytest.mark.slow, pytest.mark.timeout(480)]


def _cmd(diff_env: dict, data: Path) -> list[str]:
    return [sys.executable, "-m", "physdiff.launch.worker", "--stage", "diffusion", "--preset", "debug", "--cpu",
            f"paths.data_root={data}", *diff_env["overrides"], f"train.shards={diff_env['shards']}",
            "tracking.enabled=false", "train.epochs=1", "train.batches_per_epoch=5", "train.checkpoint_every=1",
            "diffusion.width=32"]


def test_kill_during_checkpoint_write_resumes_previous_complete(diff_env: dict, tmp_path: Path) -> None:
    from physdiff.training import checkpoint as ck

    ref = subprocess.run(_cmd(diff_env, tmp_path / "ref"), cwd=REPO, env=env1(), capture_output=True, text=True,
                         timeout=300)
    assert ref.returncode == 0, ref.stderr[-3000:]
    ref_run = next((tmp_path / "ref" / "runs").glob("diffusion-*"))

    data = tmp_path / "crash"
    ckdir = data / "runs" / ref_run.name / "checkpoints"  # same config hash -> same run folder name
    proc = subprocess.Popen(_cmd(diff_env, data), cwd=REPO, env=env1(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    caught = None
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            names = os.listdir(ckdir) if ckdir.is_dir() else []
            tmp = [n for n in names if is_temp(n)]
            if tmp and any(n.startswith("step_") for n in names):
                os.kill(proc.pid, signal.SIGKILL)
                caught = tmp[0]
                break
            time.sleep(0.002)
    finally:
        if proc.poll() is None and caught is None:
            proc.kill()
        proc.wait()
    assert caught, "never caught a checkpoint write in progress:\n" + proc.stderr.read()[-3000:]
    assert proc.returncode == -signal.SIGKILL

    partial = ckdir / caught
    assert partial.is_dir() and not (partial / "COMPLETE").exists()  # what the crash left
    prev = ck.latest_checkpoint(ckdir)
    assert prev is not None and (prev.path / "COMPLETE").exists()
    written_step = int(re.match(r"\.step_(\d+)\.", caught).group(1))
    assert prev.step < written_step

    again = subprocess.run(_cmd(diff_env, data), cwd=REPO, env=env1(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"removed an incomplete checkpoint write: {caught}" in again.stderr, again.stderr[-3000:]
    assert f"resumed from {prev.path} " in again.stderr, again.stderr[-3000:]
    assert not [n for n in os.listdir(ckdir) if is_temp(n)]
    assert_same_weights(final_model(ref_run), final_model(ckdir.parent))
