"""The distributed shard reader: one function builds the batch stream of a split for a stage.

    loader = make_loader("data/shards/debug", "train", batch_size=16, mode="train", epoch=e,
                         num_workers=2, side_tables={"prior": "runs/prior/priors-train.safetensors"})
    for batch in loader:          # exactly len(loader) batches on every rank
        batch["audio"]            # (B, T) float32 at the shards' sample rate
        batch["modes"]            # (B, 3, D) float32: f, p, lambda per bin (Sec. 3.1)
        batch["material"]         # (B,) long, index into GREATEST_HITS_MATERIALS
        batch["prior/gamma"]      # (B, M) from the side table "prior", joined by key
    loader.skipped                # corrupt shards / samples skipped (skip_corrupt=True)

Sharding (what webdataset's ``split_by_node`` + ``split_by_worker`` do, with the rank taken
explicitly): rank r of R and loader worker w of W read shards ``shards[r::R][w::W]``.
Rank and world size come from ``torch.distributed`` when it is initialised (else 0 / 1), or from
the ``rank`` / ``world_size`` arguments.

Modes:
- ``train``: each (rank, worker) draws shards with replacement (resampled shards) from an RNG seeded
  by (seed, epoch, rank, worker), shuffles samples in a buffer with the same RNG, and stops after a
  fixed number of batches, so every rank yields exactly ``batches_per_epoch`` batches and no DDP
  rank ever waits on another. Default ``batches_per_epoch``: samples // (batch_size * world_size).
- ``eval``: shards are split across ranks and workers, read in order once: every sample exactly once
  across all ranks and workers (ranks may get different batch counts; the last batch may be short).

Frames: with ``frames=False`` (diffusion and prior stages) the frames member is skipped without
being read into Python, and never decoded. ``frames=True`` adds ``batch["frames"]`` (B, 22, 3, H, W)
uint8; ``frames_to_float`` maps it to [0, 1] floats on the device when needed.

A corrupt or truncated shard raises DataError naming the shard (default) or, with
``skip_corrupt=True``, is counted in ``loader.skipped`` (samples read before the damage are kept)
and reported on stderr with its running count. A member name that is absolute or contains ``..``
is always an error naming the shard (a crafted shard, not a damaged one); members are read into
memory only, never extracted, and nothing in a shard is unpickled (JSON, FLAC, ``.npy`` without pickle).
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from physdiff.data import sample as S
from physdiff.data.sidetable import SideTable, read_side_table
from physdiff.errors import DataError

_SKIPS = "__skips__"  # batch entry carrying this worker's skip notices to the main process


def load_manifest(shard_root: str | Path, split: str) -> dict[str, Any]:
    """``<shard_root>/<split>/manifest.json``; raises DataError naming it when missing or unreadable."""
    p = Path(shard_root) / split / "manifest.json"
    if not p.exists():
        raise DataError(f"no manifest {p}: build the shards first (python shards/build.py --source ... --out {shard_root})")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"unreadable manifest {p}: {e}") from e


def stream_seed(seed: int, epoch: int, rank: int, worker: int) -> int:
    """The RNG seed of one (rank, worker) reader in one epoch: explicit, never time or pid based."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{epoch}/{rank}/{worker}".encode()).digest()[:8], "big")


def dist_info() -> tuple[int, int]:
    """(rank, world size) from torch.distributed when initialised, else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def frames_to_float(frames: torch.Tensor) -> torch.Tensor:
    """(B, F, 3, H, W) uint8 -> float32 in [0, 1] (do it on the GPU: 4x less host-to-device traffic)."""
    return frames.float().div_(255.0)


@dataclass
class _Spec:
    """Everything a reader worker needs (forked into DataLoader workers)."""

    urls: list[str]
    mode: str
    batch_size: int
    frames: bool
    seed: int
    epoch: int
    rank: int
    world_size: int
    batches: int  # train: batches per epoch per rank
    shuffle_buffer: int
    skip_corrupt: bool
    num_samples: int
    tables: dict[str, SideTable] = field(default_factory=dict)


def _iter_tar(url: str, frames: bool) -> Iterator[dict[str, Any]]:
    """Samples of one shard (members grouped by key), as webdataset's tar expander + group_by_keys."""
    from webdataset.tariterators import base_plus_ext, tar_file_iterator

    def select(name: str) -> bool:
        _check_member_name(name)  # every regular member, before its bytes are read
        return frames or not S.is_frame_member(name)

    with open(url, "rb") as f:
        cur: dict[str, Any] | None = None
        try:
            for m in tar_file_iterator(f, select_files=select):  # errors propagate (default handler re-raises)
                key, ext = base_plus_ext(m["fname"])
                if key is None:
                    continue
                if cur is None or cur["__key__"] != key:
                    if cur is not None:
                        yield cur
                    cur = {"__key__": key, "__url__": url}
                cur[ext] = m["data"]
        except _UnsafeMember as e:  # never skippable: a crafted shard is not a damaged one
            raise DataError(f"unsafe member name {e.name!r} in shard {url}: shard members must be plain relative "
                            "names (no absolute path, no '..'); refusing to read this shard") from None
        if cur is not None:
            yield cur


class _UnsafeMember(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _check_member_name(name: str) -> None:
    """Reject member names that could escape a folder if anyone ever extracted the shard (tar slip)."""
    parts = name.replace("\\", "/").split("/")
    if not name or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts or "\0" in name:
        raise _UnsafeMember(name)


def _decode(raw: dict[str, Any], spec: _Spec) -> dict[str, Any]:
    key, url = raw["__key__"], raw["__url__"]
    try:
        meta = S.decode_meta(raw[S.META_EXT])
        audio, _sr = S.decode_audio(raw[S.AUDIO_EXT], float(meta.get("audio_gain", 1.0)))  # (T,)
        if audio.shape[0] != spec.num_samples:
            raise ValueError(f"audio has {audio.shape[0]} samples, expected {spec.num_samples}")
        modes = S.decode_npy(raw[S.MODES_EXT]).astype(np.float32, copy=False)  # (3, D)
        out = {"key": key, "audio": audio, "modes": modes, "material": int(meta["material_index"]), "meta": meta}
        if spec.frames:
            fr = S.decode_frames(raw[S.FRAMES_EXT], meta["frame_bytes"])  # (F, H, W, 3)
            out["frames"] = np.ascontiguousarray(fr.transpose(0, 3, 1, 2))  # (F, 3, H, W)
        return out
    except Exception as e:  # any member missing or undecodable: the sample is corrupt
        raise DataError(f"corrupt sample {key} in shard {url}: {type(e).__name__}: {e}") from e


def _collate(items: list[dict[str, Any]], spec: _Spec) -> dict[str, Any]:
    keys = [it["key"] for it in items]
    batch: dict[str, Any] = {
        "key": keys,
        "audio": torch.from_numpy(np.stack([it["audio"] for it in items])),  # (B, T)
        "modes": torch.from_numpy(np.stack([it["modes"] for it in items])),  # (B, 3, D)
        "material": torch.tensor([it["material"] for it in items], dtype=torch.long),  # (B,)
        "meta": [it["meta"] for it in items],
    }
    if spec.frames:
        batch["frames"] = torch.from_numpy(np.stack([it["frames"] for it in items]))  # (B, F, 3, H, W) uint8
    for name, table in spec.tables.items():
        for col, arr in table.lookup(keys).items():
            batch[f"{name}/{col}"] = torch.from_numpy(np.ascontiguousarray(arr))  # (B, ...)
    return batch


class _ShardStream(IterableDataset):
    def __init__(self, spec: _Spec) -> None:
        self.spec = spec

    def _urls(self, rng: random.Random, worker: int, nworkers: int) -> Iterator[str]:
        sp = self.spec
        if sp.mode == "train":  # resampled shards: an endless draw with replacement
            while True:
                yield sp.urls[rng.randrange(len(sp.urls))]
        else:  # split_by_node, then split_by_worker
            yield from islice(islice(sp.urls, sp.rank, None, sp.world_size), worker, None, nworkers)

    def _samples(self, urls: Iterator[str], skips: list[str]) -> Iterator[dict[str, Any]]:
        sp = self.spec
        bad: set[str] = set()
        for url in urls:
            if url in bad:
                continue
            try:
                for raw in _iter_tar(url, sp.frames):
                    try:
                        yield _decode(raw, sp)
                    except DataError as e:
                        if not sp.skip_corrupt:
                            raise
                        skips.append(f"sample: {e}")
            except DataError:
                raise
            except Exception as e:  # tarfile.ReadError, truncated stream, OSError
                msg = f"corrupt or truncated shard {url}: {type(e).__name__}: {e}"
                if not sp.skip_corrupt:
                    raise DataError(msg) from e
                skips.append(f"shard: {msg}")
                bad.add(url)  # resampling would draw it again: read it at most once
                if sp.mode == "train" and len(bad) == len(sp.urls):
                    raise DataError(f"every shard is corrupt ({len(bad)} shards, first {sorted(bad)[0]})") from e

    def __iter__(self) -> Iterator[dict[str, Any]]:
        sp = self.spec
        info = get_worker_info()
        worker, nworkers = (info.id, info.num_workers) if info is not None else (0, 1)
        rng = random.Random(stream_seed(sp.seed, sp.epoch, sp.rank, worker))
        skips: list[str] = []
        samples = self._samples(self._urls(rng, worker, nworkers), skips)
        if sp.mode == "train":
            from webdataset.filters import _shuffle

            samples = _shuffle(samples, bufsize=sp.shuffle_buffer, initial=sp.shuffle_buffer, rng=rng)
            quota = sp.batches // nworkers + (1 if worker < sp.batches % nworkers else 0)
        else:
            quota = None
        made = 0
        while quota is None or made < quota:
            items = list(islice(samples, sp.batch_size))
            if not items or (quota is not None and len(items) < sp.batch_size):
                break
            batch = _collate(items, sp)
            batch[_SKIPS], skips[:] = list(skips), []
            made += 1
            yield batch
        if skips:  # notices after the last batch still reach the main process
            yield {_SKIPS: list(skips)}


def _as_is(batch: dict[str, Any]) -> dict[str, Any]:
    return batch


class ShardLoader:
    """Iterable of batch dicts for one split (see module docstring); ``len()`` in train mode."""

    def __init__(self, spec: _Spec, num_workers: int, manifest: dict[str, Any]) -> None:
        self.spec = spec
        self.num_workers = num_workers
        self.manifest = manifest
        self.skipped: list[str] = []

    @property
    def skip_count(self) -> int:
        return len(self.skipped)

    def set_epoch(self, epoch: int) -> None:
        """Reseed for another epoch (train mode draws other shards and another shuffle)."""
        self.spec.epoch = epoch

    def __len__(self) -> int:
        if self.spec.mode != "train":
            raise TypeError("an eval loader has no fixed length per rank; count batches while iterating")
        return self.spec.batches

    def __iter__(self) -> Iterator[dict[str, Any]]:
        ds = _ShardStream(self.spec)
        # collate_fn=_as_is: batches are built in the workers; torch's default_convert would walk every meta dict.
        dl = DataLoader(ds, batch_size=None, num_workers=self.num_workers, collate_fn=_as_is,
                        persistent_workers=False, prefetch_factor=4 if self.num_workers else None)
        for batch in dl:
            for notice in batch.pop(_SKIPS, []):
                self.skipped.append(notice)
                # Counted and said where it happens: stage logs show every skip with its running count.
                print(f"[reader] skip {len(self.skipped)} (rank {self.spec.rank}, epoch {self.spec.epoch}): {notice}",
                      file=sys.stderr, flush=True)
            if batch:
                yield batch


def make_loader(
    shard_root: str | Path,
    split: str,
    *,
    batch_size: int,
    mode: str = "train",
    frames: bool = False,
    seed: int = 0,
    epoch: int = 0,
    num_workers: int = 0,
    batches_per_epoch: int | None = None,
    shuffle_buffer: int = 256,
    skip_corrupt: bool = False,
    side_tables: Mapping[str, str | Path | SideTable] | None = None,
    rank: int | None = None,
    world_size: int | None = None,
) -> ShardLoader:
    """The batch stream of ``<shard_root>/<split>`` for this rank (see the module docstring for modes)."""
    if mode not in ("train", "eval"):
        raise ValueError(f"mode must be 'train' or 'eval', got {mode!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    manifest = load_manifest(shard_root, split)
    root = Path(shard_root)
    urls = [str(root / s["name"]) for s in manifest["shards"] if s["count"] > 0]
    r, w = dist_info()
    rank = r if rank is None else rank
    world_size = w if world_size is None else world_size
    n = int(manifest["num_samples"])
    if mode == "train":
        if not urls:
            raise DataError(f"split {split} under {shard_root} holds no samples")
        batches = batches_per_epoch if batches_per_epoch is not None else max(1, n // (batch_size * world_size))
    else:
        batches = 0
    tables = {name: t if isinstance(t, SideTable) else read_side_table(t) for name, t in (side_tables or {}).items()}
    spec = _Spec(urls, mode, batch_size, frames, seed, epoch, rank, world_size, batches, shuffle_buffer,
                 skip_corrupt, int(manifest["sample"]["num_samples"]), tables)
    return ShardLoader(spec, num_workers, manifest)
