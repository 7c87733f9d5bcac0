"""Shared pieces of the reliability suite: a debug world with a briefly trained prior run and a video export.

The diffusion stage reads (w, gamma) from a prior run and (nu, logits) from a video run. The prior is
trained for real (1 epoch, 2 batches) on the session's ``debug_data`` shards; the video export is a
*stand-in* written with the real side-table writer in the video stage's export format (nu = a fixed
random projection of the material one-hot + noise), so these fault tests do not pay for training the
video network. Every test here runs the real diffusion stage through real processes on top of it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.standins import write_video_export

REPO = Path(__file__).resolve().parents[2]
NU_DIM = 16
# Quiet, fast and deterministic diffusion settings shared by the suite (tiny step counts, one
# evaluation at the end with 2 DDIM steps, metrics every step so tests can watch progress).
DIFF_FAST = ["train.progress=false", "loader.num_workers=0", "train.log_every=1", "tracking.audio_examples=1",
             "diffusion.eval_sample_steps=2", "train.eval_every=1000", "loader.batch_size=2"]


@pytest.fixture(scope="session")
def diff_env(debug_data: dict) -> dict:
    """``{"root", "shards", "overrides"}``: overrides that point the diffusion stage at real upstream exports."""
    from physdiff.config import resolve_config
    from physdiff.stages import train_stage

    root = Path(debug_data["root"])
    prior_cfg = resolve_config("debug", [*debug_data["overrides"], "tracking.enabled=false", "train.progress=false",
                                         "loader.num_workers=0", "train.epochs=1", "train.batches_per_epoch=2"])
    prior = train_stage(prior_cfg, "prior", cpu=True)
    assert prior.status in ("finished", "skipped")
    video_run = root / "reliability-video-run"
    if not (video_run / "export" / "manifest.json").exists():
        write_video_export(video_run, debug_data["shards"], NU_DIM, seed=7, producer="reliability stand-in")
    over = [*DIFF_FAST, f"diffusion.prior_run={prior.run_dir}", f"diffusion.video_run={video_run}"]
    return {"root": root, "shards": Path(debug_data["shards"]), "overrides": over,
            "data_overrides": list(debug_data["overrides"])}


def launch_cmd(*args: str) -> list[str]:
    return [sys.executable, str(REPO / "cluster" / "launch.py"), *args]


def env1(**extra: str) -> dict[str, str]:
    """One intra-op thread per process: the same float reduction order in every run (bitwise comparisons)."""
    return dict(os.environ, OMP_NUM_THREADS="1", **extra)


def max_step(run_dir: Path) -> int:
    """The highest optimiser step recorded in the run's local metrics (``metrics.jsonl``)."""
    p = run_dir / "metrics.jsonl"
    if not p.exists():
        return 0
    steps = []
    for line in p.read_text().splitlines():
        try:
            steps.append(json.loads(line)["step"])
        except (ValueError, KeyError):
            continue  # a line being written right now
    return max(steps, default=0)


def wait_for(pred, timeout: float, what: str, poll: float = 0.1) -> None:
    deadline = time.time() + timeout
    while not pred():
        if time.time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)


def run_dir_from(stdout: str) -> Path:
    line = next(l for l in stdout.splitlines() if l.startswith("run folder:"))
    return Path(line.split(":", 1)[1].strip())


def final_model(run_dir: Path) -> dict:
    from physdiff.training import checkpoint as ck

    last = ck.latest_checkpoint(run_dir / "checkpoints")
    assert last is not None, f"no complete checkpoint in {run_dir}"
    return ck.load_state(last.path)["model"]


def assert_same_weights(a: dict, b: dict) -> None:
    """CPU, deterministic algorithms, one thread: resumed and uninterrupted runs agree bit for bit."""
    import torch

    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k}: max |diff| {(a[k].float() - b[k].float()).abs().max():.3g}"


def run(cmd: list[str], timeout: float, **kw: Any) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO, **kw)
