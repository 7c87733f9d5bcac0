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
    # the validation split: this share of the training videos (by video), for every selection; 0 = none
    val_fraction: float = 0.1
    physics_batch: int = nonsemantic(64)  # clips per estimate_modes call
    workers: int = nonsemantic(1)

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"frame_size": 64, "samples_per_shard": 16, "workers": 2},  # 2 build processes (2 cores)
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
        if not 0.0 <= self.val_fraction < 1.0 or not 0.0 <= self.test_fraction < 1.0:
            raise ConfigError(f"shards.val_fraction and shards.test_fraction must be in [0, 1), got "
                              f"{self.val_fraction}, {self.test_fraction}")


@dataclass
class LoaderConfig:
    batch_size: int = 16
    shuffle_buffer: int = 256
    num_workers: int = nonsemantic(2)
    skip_corrupt: bool = False  # a corrupt shard is an error naming it (default) or a counted skip
    # sha256 of every shard checked while it is read: "shard" (no sample of a failing shard is used), "stream"
    # (samples go out as read, the error comes at the shard's end), "off"
    verify_shards: str = nonsemantic("shard")
    # where the 22 JPEG frames of a clip are decoded: "cpu" (loader workers) or "gpu" (nvjpeg, in the training
    # process: the loader hands over the JPEG bytes)
    frame_decode: str = nonsemantic("cpu")
    # how training ranks get their shards: "resample" (every rank draws from all shards with replacement) or
    # "split" (each rank and loader worker owns a fixed share, read once per epoch; physdiff.data.reader.plan_split)
    train_shards: str = "resample"

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"shuffle_buffer": 64},
        "debug": {"batch_size": 4, "shuffle_buffer": 16, "num_workers": 0},
    }

    def validate(self) -> None:
        if self.verify_shards not in ("shard", "stream", "off"):
            raise ConfigError(f"loader.verify_shards must be shard, stream or off, got {self.verify_shards!r}")
        if self.frame_decode not in ("cpu", "gpu"):
            raise ConfigError(f"loader.frame_decode must be cpu or gpu, got {self.frame_decode!r}")
        at_least("loader", self, 1, "batch_size", "shuffle_buffer")
        at_least("loader", self, 0, "num_workers")
        if self.train_shards not in ("resample", "split"):
            raise ConfigError(f"loader.train_shards must be resample or split, got {self.train_shards!r}")
