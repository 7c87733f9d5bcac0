"""A damaged newest checkpoint (truncated ``state.pt`` or ``meta.json``) falls back to the previous complete one.

The checkpoint is COMPLETE (written and renamed whole), and damaged afterwards, as a full disk or a partial
copy leaves it. The engine must say so, move it aside (kept, never loaded), resume from the previous
complete checkpoint and finish with the weights of an uninterrupted run (CPU, deterministic: bitwise). A
checkpoint holding a pickled object is tampering, not damage: still refused (test_security.py).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from physdiff.config import resolve_config
from physdiff.training import checkpoint as ck
from physdiff.training.trainer import train
from tests.training.toy import ToyRecipe

BASE = ["train.epochs=3", "train.checkpoint_every=4", "train.lr=0.01", "train.log_every=2",
        "train.progress=false", "tracking.enabled=false"]


def _cfg(root: Path):
    return resolve_config("debug", [f"paths.data_root={root}", *BASE])


def _stop_after(n: int):
    calls = {"n": 0}

    def fn() -> bool:
        calls["n"] += 1
        return calls["n"] >= n

    return fn


def _final(run_dir: Path) -> dict[str, torch.Tensor]:
    return ck.load_state(ck.latest_checkpoint(run_dir / "checkpoints").path)["model"]


@pytest.mark.parametrize("damage", ["truncated-state", "truncated-meta", "truncated-rng"])
def test_damaged_newest_checkpoint_falls_back_to_the_previous(tmp_path: Path, caplog, damage: str) -> None:
    caplog.set_level(logging.INFO)  # the engine logs (physdiff.logs): what a job's log file would hold
    ref = train(_cfg(tmp_path / "ref"), ToyRecipe())
    cfg = _cfg(tmp_path / "run")
    first = train(cfg, ToyRecipe(), stop_fn=_stop_after(9))  # checkpoints at 4, 6 (epoch end), 8, 9 (stop)
    assert first.status == "stopped" and first.step == 9
    ckpts = ck.list_checkpoints(first.run_dir / "checkpoints")
    assert [c.step for c in ckpts] == [6, 8, 9]
    newest = ckpts[-1].path
    target = {"truncated-state": "state.pt", "truncated-meta": "meta.json", "truncated-rng": "rng_rank0.pt"}[damage]
    data = (newest / target).read_bytes()
    (newest / target).write_bytes(data[: len(data) // 2])
    assert (newest / ck.COMPLETE).is_file()  # still marked complete: only loading it shows the damage
    caplog.clear()

    second = train(cfg, ToyRecipe())
    err = caplog.text
    assert second.status == "finished" and second.step == 18
    assert "step_00000009 is damaged" in err and "fell back to the previous complete checkpoint" in err, err
    assert "resumed from" in err and "step_00000008" in err, err
    aside = list((first.run_dir / "checkpoints").glob("step_00000009.corrupt-*"))
    assert len(aside) == 1 and (aside[0] / target).read_bytes() == data[: len(data) // 2]  # kept for inspection
    a, b = _final(ref.run_dir), _final(second.run_dir)
    for k in a:  # the replayed step 9 lands on the uninterrupted run's weights
        assert torch.equal(a[k], b[k]), k


def test_every_checkpoint_damaged_starts_over_and_says_so(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO)
    cfg = _cfg(tmp_path)
    first = train(cfg, ToyRecipe(), stop_fn=_stop_after(5))
    for c in ck.list_checkpoints(first.run_dir / "checkpoints"):
        (c.path / "state.pt").write_bytes(b"")
    caplog.clear()
    second = train(cfg, ToyRecipe())
    err = caplog.text
    assert second.status == "finished" and second.step == 18
    assert "no complete checkpoint loads: training starts from the beginning" in err, err
