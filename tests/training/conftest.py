"""Small real shards for the prior-stage tests, built once per session with the real shard builder."""

from __future__ import annotations

from pathlib import Path

import pytest

# Every test here trains on the same shards; overrides that define them (part of the run hash).
SHARD_OVERRIDES = ["shards.samples_per_shard=2"]
# Fast, deterministic prior-stage settings for the CPU tests: 6 optimiser steps per epoch.
PRIOR_FAST = [*SHARD_OVERRIDES, "loader.batch_size=2", "train.batches_per_epoch=6", "train.epochs=2",
              "train.log_every=1", "train.checkpoint_every=4", "loader.num_workers=0", "tracking.audio_examples=1"]


@pytest.fixture(scope="session")
def prior_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root holding shards (5 train + 3 test clips) at the place the prior stage looks for them."""
    from physdiff.config import resolve_config
    from physdiff.data.build import build_shards
    from physdiff.stages import shards_dir
    from tests.data.fixtures import make_folder

    root = tmp_path_factory.mktemp("prior-data")
    cfg = resolve_config("debug", [f"paths.data_root={root}", *SHARD_OVERRIDES])
    src = make_folder(root / "source")
    summary = build_shards(src, shards_dir(cfg), cfg, workers=1)
    assert summary["written"] == 8
    return root
