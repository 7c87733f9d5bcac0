"""What every shard-reading training stage shares: finding its shards, counting batches, the loader.

A stage that trains on the WebDataset shards subclasses :class:`ShardRecipe` and says only what is
its own: whether it reads frames, which side tables it joins (upstream exports), and what it checks
in the shard manifest. Batches per epoch are identical on every rank (``train.batches_per_epoch``,
else one pass over the training split), so no DDP rank ever waits on another.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from physdiff.errors import DataError
from physdiff.training.recipe import Recipe


class ShardRecipe(Recipe):
    """A :class:`Recipe` whose data are the shards of this config (``physdiff.stages.shards_dir``)."""

    frames: bool = False  # decode the 22 JPEG frames (only the video stage needs them)

    def __init__(self) -> None:
        self.shard_root: Path | None = None
        self.num_train = 0
        self.train_manifest: dict[str, Any] = {}

    def setup(self, cfg: Any, rank: int, world_size: int) -> None:
        from physdiff.data.reader import load_manifest
        from physdiff.identity import shards_dir

        self.shard_root = shards_dir(cfg)
        man = load_manifest(self.shard_root, "train")  # DataError naming the file when missing
        self.num_train = int(man["num_samples"])
        self.train_manifest = man
        self.check_shards(man, cfg)

    def check_shards(self, manifest: dict[str, Any], cfg: Any) -> None:
        """Refuse shards cut for another clip format than ``cfg.audio`` (a clear error, not garbage)."""
        sr, n = int(manifest["sample"]["sample_rate"]), int(manifest["sample"]["num_samples"])
        if sr != cfg.audio.sample_rate or n != cfg.audio.num_samples:
            raise DataError(
                f"shards {self.shard_root} hold {n} samples at {sr} Hz but the config expects "
                f"{cfg.audio.num_samples} at {cfg.audio.sample_rate} Hz: rebuild them with this preset"
            )

    def side_tables(self, split: str) -> dict[str, Any] | None:
        """Upstream exports joined to ``split`` by sample key (``make_loader(side_tables=...)``)."""
        return None

    def num_train_batches(self, cfg: Any, world_size: int) -> int:
        from physdiff.data.reader import train_batches_per_epoch

        return train_batches_per_epoch(self.train_manifest, cfg.loader.batch_size, world_size,
                                       train_shards=cfg.loader.train_shards, num_workers=cfg.loader.num_workers,
                                       seed=cfg.seed, requested=cfg.train.batches_per_epoch,
                                       where=f"the training split of {self.shard_root}")

    def loader(self, cfg: Any, split: str, mode: str = "eval", epoch: int = 0, rank: int | None = 0,
               world_size: int | None = 1, batches: int | None = None) -> Any:
        """Batches of ``split`` (eval mode: every clip once, on this process unless rank/world_size say otherwise)."""
        from physdiff.data.reader import make_loader

        frames: Any = self.frames
        if frames and cfg.loader.frame_decode == "gpu":
            frames = "jpeg"  # the JPEG bytes; the recipe decodes them on its device (physdiff.data.sample.decode_frame_batch)
        return make_loader(
            self.shard_root, split, batch_size=cfg.loader.batch_size, mode=mode, frames=frames, seed=cfg.seed,
            epoch=epoch, num_workers=cfg.loader.num_workers, batches_per_epoch=batches,
            shuffle_buffer=cfg.loader.shuffle_buffer, skip_corrupt=cfg.loader.skip_corrupt,
            side_tables=self.side_tables(split), rank=rank, world_size=world_size, verify=cfg.loader.verify_shards,
            train_shards=cfg.loader.train_shards,
        )

    def export(self, model: Any, cfg: Any, out: Any) -> None:
        """Every shard stage's export names the shards it was made from; subclasses call this first."""
        out.manifest["shard_root"] = str(self.shard_root)

    def train_batches(self, cfg: Any, epoch: int, rank: int, world_size: int) -> Iterator[dict[str, Any]]:
        nb = self.num_train_batches(cfg, world_size)
        return iter(self.loader(cfg, "train", "train", epoch, rank, world_size, nb))


def check_export_count(stage: str, split: str, keys: list[str], shard_manifest: dict[str, Any], shard_root: Path,
                       cfg: Any, loader: Any) -> None:
    """An export covers every clip of the split, unless ``loader.skip_corrupt`` skipped some (recorded)."""
    n = int(shard_manifest["num_samples"])
    if len(keys) != n and not (cfg.loader.skip_corrupt and getattr(loader, "skipped", None)):
        raise DataError(f"{stage} export of split {split}: read {len(keys)} clips but the manifest of "
                        f"{shard_root / split} lists {n}")


def upstream_tables(cfg: Any, stage: str) -> dict[str, Path]:
    """{split: side table} of the finished ``prior`` / ``video`` run this config reads (``diffusion.<stage>_run``)."""
    from physdiff.artifacts import read_export
    from physdiff.inference.load import upstream_run

    return read_export(upstream_run(cfg, stage), stage).splits
