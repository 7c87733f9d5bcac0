"""Fixtures for the data tests: a small Greatest Hits folder and shards built from it once per module."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.data.fixtures import make_folder


@pytest.fixture(scope="session")
def gh_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 videos (2 train, 1 test), 11 annotated events: 8 usable, a scratch, a 'None' material, an onset past the end."""
    return make_folder(tmp_path_factory.mktemp("gh") / "src")


@pytest.fixture(scope="session")
def debug_cfg():
    from physdiff.config import resolve_config

    # Small shards and one shard per task so even 3 videos make several tasks and shards; no validation split
    # (these tests count the writer's train/test output; the validation split has its own test in test_build.py).
    return resolve_config("debug", ["shards.samples_per_shard=2", "shards.shards_per_task=1", "shards.val_fraction=0"])


@pytest.fixture(scope="session")
def gh_shards(gh_source: Path, debug_cfg, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    from physdiff.data.build import build_shards

    out = tmp_path_factory.mktemp("shards") / "out"
    summary = build_shards(gh_source, out, debug_cfg, workers=2)
    return out, summary
