"""The training engine on an in-memory recipe: resume equality, stop/resume twice, divergence, atomicity."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from physdiff.config import resolve_config
from physdiff.training import checkpoint as ck
from physdiff.training.trainer import TrainingDiverged, run_dir_for, train
from tests.training.toy import ToyRecipe

BASE = ["train.epochs=3", "train.checkpoint_every=4", "train.lr=0.01", "train.log_every=2",
        "train.progress=false", "tracking.enabled=false"]


def _cfg(root: Path, *extra: str):
    return resolve_config("debug", [f"paths.data_root={root}", *BASE, *extra])


def _final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    last = ck.latest_checkpoint(run_dir / "checkpoints")
    assert last is not None
    return ck.load_state(last.path)["model"]


def _stop_after(n: int):
    """stop_fn that asks to stop once n optimiser steps have been taken (checked at step boundaries)."""
    calls = {"n": 0}

    def fn() -> bool:
        calls["n"] += 1
        return calls["n"] >= n

    return fn


def test_uninterrupted_run_learns_and_keeps_last_k(tmp_path: Path) -> None:
    r = train(_cfg(tmp_path), ToyRecipe())
    assert r.status == "finished" and r.step == 18 and r.epoch == 3
    steps = [c.step for c in ck.list_checkpoints(r.run_dir / "checkpoints")]
    assert steps == [12, 16, 18]  # keep_checkpoints = 3 (periodic every 4 + epoch ends 6, 12, 18)
    meta = ck.load_meta(r.run_dir / "checkpoints" / "step_00000018")
    assert meta["epoch"] == 3 and meta["batch_in_epoch"] == 0 and meta["config"]["train"]["lr"] == 0.01
    rows = [json.loads(line) for line in (r.run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [row["train/loss"] for row in rows if "train/loss" in row]
    assert losses[-1] < losses[0]
    assert json.loads((r.run_dir / "config.json").read_text())["train"]["epochs"] == 3
    # A second launch of a finished run is a no-op.
    assert train(_cfg(tmp_path), ToyRecipe()).status == "skipped"


def test_stop_and_resume_twice_equals_uninterrupted(tmp_path: Path) -> None:
    ref = train(_cfg(tmp_path / "a"), ToyRecipe())
    cfg = _cfg(tmp_path / "b")
    first = train(cfg, ToyRecipe(), stop_fn=_stop_after(5))  # mid-epoch 0 (6 batches/epoch)
    assert first.status == "stopped" and first.step == 5
    second = train(cfg, ToyRecipe(), stop_fn=_stop_after(6))  # mid-epoch 1
    assert second.status == "stopped" and second.step == 11
    third = train(cfg, ToyRecipe())
    assert third.status == "finished" and third.step == 18 and third.run_dir.name == ref.run_dir.name
    a, b = _final_weights(ref.run_dir), _final_weights(third.run_dir)
    for k in a:  # CPU, deterministic: bitwise equal (tolerance 0)
        assert torch.equal(a[k], b[k]), k


def test_nonfinite_loss_stops_and_keeps_last_checkpoint(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    with pytest.raises(TrainingDiverged, match="non-finite loss.*step_00000008"):
        train(cfg, ToyRecipe(nan_at_step=10))
    run_dir = run_dir_for(cfg, ToyRecipe())
    last = ck.latest_checkpoint(run_dir / "checkpoints")
    assert last is not None and last.step == 8
    state = ck.load_state(last.path)
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    # The run resumes from that checkpoint once the cause is gone.
    assert train(cfg, ToyRecipe()).status == "finished"


def test_incomplete_checkpoints_are_never_loaded(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    r = train(cfg, ToyRecipe(), stop_fn=_stop_after(3))
    ckdir = r.run_dir / "checkpoints"
    good = ck.latest_checkpoint(ckdir)
    assert good is not None and good.step == 3
    # What a crash can leave: a temporary folder, and a step folder without its COMPLETE marker.
    dead = ck.tmp_dir_for(ckdir, 4, "dead")
    shutil.copytree(good.path, dead)
    broken = ckdir / "step_00000009"
    shutil.copytree(good.path, broken)
    (broken / "COMPLETE").unlink()
    (broken / "state.pt").write_bytes(b"truncated")
    assert ck.latest_checkpoint(ckdir).step == 3
    r2 = train(cfg, ToyRecipe(), stop_fn=_stop_after(1))
    assert r2.step == 4  # resumed from step 3, took one step
    assert not dead.exists() and not broken.exists()


def test_rng_state_round_trip_is_pickle_free(tmp_path: Path) -> None:
    import random

    import numpy as np

    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    ck.write_rank_rng(tmp_path, 0)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    ck.set_rng_state(torch.load(tmp_path / "rng_rank0.pt", weights_only=True))
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a


def test_grad_accumulation_and_ema_checkpointed(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "train.grad_accum=4", "train.ema_decay=0.9")
    r = train(cfg, ToyRecipe())
    assert r.step == 3 * 2  # 6 micro-batches per epoch -> groups of 4 + 2
    state = ck.load_state(ck.latest_checkpoint(r.run_dir / "checkpoints").path)
    assert set(state["ema"]) == set(state["model"])
    assert not torch.equal(state["ema"]["0.weight"], state["model"]["0.weight"])


def test_unreachable_tracking_server_does_not_stop_training(tmp_path: Path) -> None:
    cfg = resolve_config("debug", [f"paths.data_root={tmp_path}", *BASE[:-1], "tracking.tracking_uri=http://127.0.0.1:9"])
    with pytest.warns(RuntimeWarning, match="MLflow tracking at http://127.0.0.1:9 failed") as rec:
        r = train(cfg, ToyRecipe())
    assert r.status == "finished" and r.mlflow_run_id is None
    assert sum("MLflow tracking" in str(w.message) for w in rec) == 1  # warned once
    rows = (r.run_dir / "metrics.jsonl").read_text().splitlines()
    assert len(rows) >= 9 and any("val/mse" in row for row in rows)


class _DtypeToy(ToyRecipe):
    """The toy regression, recording the dtype its first layer computes in (Accelerate casts the model's
    output back to fp32, so the output alone would not tell)."""

    def __init__(self) -> None:
        super().__init__()
        self.dtypes: set[torch.dtype] = set()

    def build_model(self, cfg):
        model = super().build_model(cfg)
        model[0].register_forward_hook(lambda mod, args, out: self.dtypes.add(out.dtype))
        return model


def test_bf16_mixed_precision_autocasts_and_keeps_fp32_weights(tmp_path: Path) -> None:
    recipe = _DtypeToy()
    r = train(_cfg(tmp_path, "train.mixed_precision=bf16"), recipe)
    assert r.status == "finished"
    assert recipe.dtypes == {torch.bfloat16}  # the forward ran under bf16 autocast (CPU autocast here)
    state = ck.load_state(ck.latest_checkpoint(r.run_dir / "checkpoints").path)
    assert all(v.dtype == torch.float32 for v in state["model"].values())  # master weights stay fp32
    rows = [json.loads(line) for line in (r.run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [row["train/loss"] for row in rows if "train/loss" in row]
    assert losses[-1] < losses[0]


def test_gradient_clipping_bounds_the_update_norm(tmp_path: Path) -> None:
    """What the optimiser sees has norm <= train.grad_clip; the logged pre-clip norm shows it had to clip."""
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    seen: list[float] = []

    def hook(opt, args, kwargs):
        grads = [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
        seen.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(x) for x in grads]))))

    handle = register_optimizer_step_pre_hook(hook)
    try:
        r = train(_cfg(tmp_path, "train.grad_clip=0.05", "train.log_every=1"), ToyRecipe())
    finally:
        handle.remove()
    assert r.status == "finished" and len(seen) == r.step == 18
    assert max(seen) <= 0.05 * (1 + 1e-4), max(seen)
    rows = [json.loads(line) for line in (r.run_dir / "metrics.jsonl").read_text().splitlines()]
    pre = [row["train/grad_norm"] for row in rows if "train/grad_norm" in row]
    assert len(pre) == 18 and max(pre) > 0.05 * 2  # the raw gradients were larger: clipping acted
