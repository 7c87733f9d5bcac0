"""The video stage on the generated debug world: 2-process CPU DDP through the launcher, export, resume.

(The TSM shift itself is tested in tests/models/test_tsm.py; the augmentation in tests/data/test_augment.py.)
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from physdiff.training import checkpoint as ck

REPO = Path(__file__).resolve().parents[2]
LAUNCH = REPO / "cluster" / "launch.py"
# A few steps of the debug preset (32 px frames, resnet_small 8..64 wide); workers 0: the test's cores are few.
FAST = ["loader.num_workers=0", "train.log_every=1", "train.progress=false", "tracking.enabled=false"]


def _launch(args: list[str], timeout: int = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(LAUNCH), *args], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=REPO)


def _run_dir(out: str) -> Path:
    line = next(l for l in out.splitlines() if l.startswith("run folder:"))
    return Path(line.split(":", 1)[1].strip())


def _split_keys(shards: Path, split: str) -> list[str]:
    """Every sample key of a split, read from the shards themselves (no frames decoded)."""
    from physdiff.data.reader import make_loader

    keys: list[str] = []
    for batch in make_loader(shards, split, batch_size=4, mode="eval", frames=False):
        keys += batch["key"]
    return keys


@pytest.mark.timeout(300)
def test_cpu_two_process_ddp_trains_and_exports_every_clip(debug_data: dict) -> None:
    from physdiff.config import resolve_config
    from physdiff.data.reader import make_loader
    from physdiff.data.sidetable import read_side_table
    from physdiff.models.video import video_feature_dim
    from physdiff.artifacts import read_export
    from physdiff.stages import get_recipe

    # label_smoothing makes this run's hash its own: other stage tests train a 1-epoch debug video run
    # on the same data root, and launching a finished config only reports it.
    over = [*debug_data["overrides"], *FAST, "train.batches_per_epoch=2", "train.epochs=1", "video.label_smoothing=0.01"]
    p = _launch(["--stage", "video", "--cpu", "--procs", "2", "--preset", "debug", *over])
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    run_dir = _run_dir(p.stdout)
    done = json.loads((run_dir / "DONE.json").read_text())
    assert done["world_size"] == 2 and done["step"] == 2 and done["epoch"] == 1
    m = done["metrics"]
    for k in ("val/acc", "val/balanced_acc", "val/chance_acc", "val/chance_balanced_acc"):
        assert 0.0 <= m[k] <= 1.0, k
    assert m["val/clips"] > 0 and math.isfinite(m["val/loss"]) and math.isfinite(m["train/loss"])
    assert (run_dir / "media" / "epoch_0001" / "confusion.png").exists()

    # Export: every clip of every split exactly once, nu of the encoder's width, 17 logits.
    cfg = resolve_config("debug", over)
    dim = video_feature_dim(cfg.video)
    paths = read_export(run_dir, "video").splits
    assert set(paths) == {"train", "val", "test"}
    man = json.loads((run_dir / "export" / "manifest.json").read_text())
    assert man["feature_dim"] == dim and man["num_classes"] == 17
    tables = {}
    for split, path in paths.items():
        keys = _split_keys(debug_data["shards"], split)
        t = read_side_table(path)
        assert len(t.keys) == len(set(t.keys)) == man["splits"][split]["count"]
        assert sorted(t.keys) == sorted(keys) and len(keys) > 0
        assert t.arrays["nu"].shape == (len(keys), dim) and t.arrays["logits"].shape == (len(keys), 17)
        assert torch.isfinite(torch.from_numpy(t.arrays["nu"])).all()
        tables[split] = t

    # The export is the trained model's eval output: recompute the held-out clips from the last checkpoint.
    recipe = get_recipe("video")
    recipe.setup(cfg, 0, 1)
    model = recipe.build_model(cfg)
    model.load_state_dict(ck.load_state(ck.latest_checkpoint(run_dir / "checkpoints").path)["model"])
    model.eval()
    for keys, nu, logits, _labels, _frames in recipe.predict(model, cfg, "test"):
        rows = tables["test"].rows(keys)
        for name, got in (("nu", nu), ("logits", logits)):
            want = torch.from_numpy(tables["test"].arrays[name][rows])
            torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)

    # ... and the diffusion stage can join it to the shards by key.
    batch = next(iter(make_loader(debug_data["shards"], "train", batch_size=2, mode="eval",
                                  side_tables={"video": paths["train"]})))
    assert batch["video/nu"].shape == (2, dim) and batch["video/logits"].shape == (2, 17)


@pytest.mark.timeout(300)
def test_stopped_run_resumes_where_it_stopped(debug_data: dict) -> None:
    """Stop after 2 of 6 steps, relaunch the same config: it continues from step 2 (optimizer state included).

    (More epochs would be another run: ``train.epochs`` is part of the run's identity hash.)
    """
    from physdiff.config import resolve_config
    from physdiff.stages import train_stage

    cfg = resolve_config("debug", [*debug_data["overrides"], *FAST, "train.batches_per_epoch=3", "train.epochs=2"])
    first = train_stage(cfg, "video", stop_fn=lambda: True, cpu=True)
    assert first.status == "stopped" and first.step == 1
    first = train_stage(cfg, "video", stop_fn=lambda: True, cpu=True)  # resumes at 1, stops after one more
    assert first.status == "stopped" and first.step == 2
    ckpt = ck.latest_checkpoint(first.run_dir / "checkpoints")
    assert ckpt.step == 2
    state = ck.load_state(ckpt.path)
    adam_steps = {float(s["step"]) for s in state["optimizer"]["state"].values()}
    assert adam_steps == {2.0}  # AdamW's moments and step count were saved
    meta = ck.load_meta(ckpt.path)
    assert (meta["epoch"], meta["batch_in_epoch"]) == (0, 2)

    boundaries = []

    def count() -> bool:
        boundaries.append(1)
        return False

    second = train_stage(cfg, "video", stop_fn=count, cpu=True)
    assert second.status == "finished" and second.step == 6 and second.epoch == 2
    assert len(boundaries) == 4  # continued with the remaining 4 steps, not restarted from 0
    final = ck.load_state(ck.latest_checkpoint(second.run_dir / "checkpoints").path)
    assert {float(s["step"]) for s in final["optimizer"]["state"].values()} == {6.0}
    assert (second.run_dir / "export" / "manifest.json").exists()
