"""Small worlds shared by the world tests (generated once per session, a few seconds in all)."""

from __future__ import annotations

from pathlib import Path

import pytest

from physdiff.world import WorldConfig, generate_world

SMALL = dict(videos=2, hits_per_video=3, size=64)
# 3 sites of 4 objects, one held out (unseen_sites): 12 videos, 4 per site
SITES = dict(sites=3, objects_per_site=4, objects_per_video=2, unseen_sites=0.34)


@pytest.fixture(scope="session")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, WorldConfig, dict]:
    """2 videos x 3 hits at 64 px, with room and noise."""
    out = tmp_path_factory.mktemp("world_small")
    world = WorldConfig(**SMALL)
    return out, world, generate_world(out, world, 0, progress=False)


@pytest.fixture(scope="session")
def clean_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, WorldConfig, dict]:
    """Clean (no room, no noise) isolated hits, for the estimator round trip and the contact frame."""
    out = tmp_path_factory.mktemp("world_clean")
    world = WorldConfig(videos=2, hits_per_video=6, size=64, clean=True, scratch_prob=0.0, moving_prob=0.0,
                        close_pair_prob=0.0, unlabelled_prob=0.0, min_gap=0.3, mean_gap=0.8)
    return out, world, generate_world(out, world, 3, progress=False)


@pytest.fixture(scope="session")
def site_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, WorldConfig, dict]:
    """12 videos x 8 hits at 32 px recorded at 3 sites (one held out; 3 of the 8 others test): recurrence, held-out sites."""
    out = tmp_path_factory.mktemp("world_sites")
    world = WorldConfig(videos=12, hits_per_video=8, size=32, test_fraction=0.35, **SITES)
    return out, world, generate_world(out, world, 0, progress=False)
