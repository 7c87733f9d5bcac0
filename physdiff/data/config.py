"""Config sections ``shards`` (the writer) and ``loader`` (the reader)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from physdiff.configchecks import at_least, rate
from physdiff.configlib import ConfigError, nonsemantic

SUBSETS = ("paper", "all")


@dataclass
class ShardsConfig:
    subset: str = "paper"  # "paper": hit + static, 10 materials; "all": every event with a known material
    num_frames: int = 22  # onset +- 11 frames
    frame_size: int = 224
    jpeg_quality: int = 90
    samples_per_shard: int = 64
    # Videos are grouped into tasks (one process / one SLURM array task each) of about
    # samples_per_shard * shards_per_task selected events; each video is decoded by one task only.
    shards_per_task: int = 4
    test_fraction: float = 0.2  # deterministic split by video-id hash, used only without train.txt/test.txt
    physics_batch: int = nonsemantic(64)  # clips per estimate_modes call
    workers: int = nonsemantic(1)

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"frame_size": 64, "samples_per_shard": 16},
        "debug": {"frame_size": 32, "samples_per_shard": 8},
    }

    def validate(self) -> None:
        if self.subset not in SUBSETS:
            raise ConfigError(f"shards.subset must be one of {', '.join(SUBSETS)}, got {self.subset!r}")
        at_least("shards", self, 1, "num_frames", "frame_size", "samples_per_shard", "shards_per_task",
                 "physics_batch", "workers")
        if not 1 <= self.jpeg_quality <= 100:
            raise ConfigError(f"shards.jpeg_quality must be in [1, 100], got {self.jpeg_quality}")
        rate("shards", self, "test_fraction")


@dataclass
class LoaderConfig:
    batch_size: int = 16
    shuffle_buffer: int = 256
    num_workers: int = nonsemantic(2)
    skip_corrupt: bool = False  # a corrupt shard is an error naming it (default) or a counted skip

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"shuffle_buffer": 64},
        "debug": {"batch_size": 4, "shuffle_buffer": 16, "num_workers": 0},
    }

    def validate(self) -> None:
        at_least("loader", self, 1, "batch_size", "shuffle_buffer")
        at_least("loader", self, 0, "num_workers")
