"""Fixtures for the tracking tests: debug shards of the generated world, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sweeps.world import build_debug_shards


@pytest.fixture(scope="session")
def tracking_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_debug_shards(tmp_path_factory.mktemp("trackworld"))
