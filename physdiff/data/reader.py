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
explicitly): in eval mode rank r of R and loader worker w of W read shards ``shards[r::R][w::W]``; in
train mode every rank resamples all shards, or (``train_shards="split"``) owns a balanced share.
Rank and world size come from ``torch.distributed`` when it is initialised (else 0 / 1), or from
the ``rank`` / ``world_size`` arguments.

Modes:
- ``train``: each (rank, worker) draws shards with replacement (resampled shards) from an RNG seeded
  by (seed, epoch, rank, worker), shuffles samples in a buffer with the same RNG, and stops after a
  fixed number of batches, so every rank yields exactly ``batches_per_epoch`` batches and no DDP
  rank ever waits on another. Default ``batches_per_epoch``: samples // (batch_size * world_size).
- ``train`` with ``train_shards="split"`` (webdataset's ``split_by_node`` for training): the shards are
  partitioned once, by clip count, across ranks and then across each rank's loader workers
  (:func:`plan_split`: seeded, balanced, the same on every rank); every epoch each (rank, worker) reads
  each of its own shards exactly once, in an order seeded by (seed, epoch, rank, worker), through the
  same shuffle buffer. No shard is read by two ranks and none twice in an epoch. Batches per epoch are
  the smallest rank's whole batches (:func:`train_batches_per_epoch`), identical on every rank; the
  clips that do not fill a batch on a (rank, worker) wait for no one and are left out of that epoch.
  Needs at least one batch of clips per rank: shard count and size follow docs/scaling.md.
- ``eval``: shards are split across ranks and workers, read in order once: every sample exactly once
  across all ranks and workers (ranks may get different batch counts; the last batch may be short).

Frames: with ``frames=False`` (diffusion and prior stages) the frames member is neither extracted
nor decoded (its bytes only pass through the integrity hash). ``frames=True`` adds
``batch["frames"]`` (B, 22, 3, H, W) uint8, decoded by ``torchvision.io.decode_jpeg`` (libjpeg-turbo)
when the batch is assembled (after the shuffle, so the shuffle buffer holds ~0.2 MB of JPEG per clip,
not 3.3 MB of pixels) straight into a shared-memory batch buffer: the batch reaches the main process
without another copy. Its storage is channels-last (``batch["frames"].flatten(0, 1)`` is
``torch.channels_last``, the video encoder's format; see ``sample.frames_chw``). ``frames="jpeg"``
instead hands the undecoded members over, packed in one shared-memory tensor: ``batch["frames_jpeg"]``
(N,) uint8 and ``batch["frame_bytes"]`` (B, 22) for ``sample.decode_frame_batch(batch["frames_jpeg"],
batch["frame_bytes"], "cuda")``: nvjpeg decodes the whole batch on the GPU and the loader workers
only parse tar. ``frames_to_float`` maps uint8 frames to [0, 1] floats on the device.

Integrity (``verify``): every shard whose manifest entry records a ``sha256`` is hashed while its tar
stream is read (every byte, frames included, at no extra pass). ``verify="shard"`` (default) holds a
shard's decoded samples (audio, modes, metadata and the still-encoded frames: ~0.25 MB a clip at
224 px) until its last byte has matched the manifest, so *no sample of a shard that fails is ever
yielded*; ``verify="stream"`` yields samples as they are read and raises at the shard's end (samples
already yielded stay yielded: only for callers that can discard them); ``verify="off"`` skips the
hash. A mismatch is a DataError naming the shard, or with ``skip_corrupt=True`` one counted skip of
the whole shard.

A corrupt or truncated shard raises DataError naming the shard (default) or, with
``skip_corrupt=True``, is counted in ``loader.skipped`` and reported on stderr with its running count
(with ``verify="off"`` or an unhashed manifest entry, samples read before the damage are kept; a
verified shard is kept whole or not at all). A member that fails to decode names its sample and
shard. A member name that is absolute or contains ``..`` is always an error naming the shard (a
crafted shard, not a damaged one); members are read into memory only, never extracted, and nothing
in a shard is unpickled (JSON, FLAC, ``.npy`` without pickle). An error inside a loader worker reaches
the caller as the same one-line DataError as without workers (not torch's "Caught DataError in
DataLoader worker process 0" plus the worker's traceback).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
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

log = logging.getLogger(__name__)

_SKIPS = "__skips__"  # batch entry carrying this worker's skip notices to the main process
_ERROR = "__error__"  # entry carrying a worker's DataError message (the worker stops after it)


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


VERIFY_MODES = ("shard", "stream", "off")
FRAME_MODES = (False, True, "jpeg")
TRAIN_SHARDS = ("resample", "split")


@dataclass(frozen=True)
class SplitPlan:
    """Which shards every (rank, loader worker) reads in ``train_shards="split"`` mode, and how much.

    ``shards[r][w]``: indices into the split's non-empty shards (manifest order) read by worker ``w`` of
    rank ``r``; ``quotas[r][w]``: the batches it yields per epoch; ``batches``: per rank per epoch (the
    sum of a rank's quotas, equal on every rank).
    """

    shards: tuple[tuple[tuple[int, ...], ...], ...]
    quotas: tuple[tuple[int, ...], ...]
    batches: int
    clips: int  # clips in the split
    clips_per_epoch: int  # clips used per epoch over all ranks: batches x batch_size x world_size

    def rank_shards(self, rank: int) -> list[int]:
        return sorted(i for w in self.shards[rank] for i in w)


def _balanced(items: list[int], counts: list[int], bins: int) -> list[list[int]]:
    """Greedy longest-first partition of ``items`` into ``bins`` by summed count (ties: the lower bin)."""
    out: list[list[int]] = [[] for _ in range(bins)]
    load = [0] * bins
    for i in sorted(items, key=lambda i: -counts[i]):  # stable: equal counts keep the given (seeded) order
        b = min(range(bins), key=lambda k: (load[k], len(out[k]), k))
        out[b].append(i)
        load[b] += counts[i]
    return out


def plan_split(counts: list[int], batch_size: int, world_size: int, num_workers: int, seed: int,
               batches: int | None = None, where: str = "the training split") -> SplitPlan:
    """Partition shards (``counts``: clips per shard) over ranks, then over each rank's workers.

        plan = plan_split([64] * 156 + [16], batch_size=16, world_size=8, num_workers=4, seed=0)
        plan.batches          # 76: the smallest rank's whole batches (its workers' floors summed)
        plan.rank_shards(3)   # the shards rank 3 reads, every epoch, each once

    The shard order is shuffled by ``seed`` first (so a partial last shard, or the videos' order, does not
    always land on rank 0), then assigned longest-first to the least-loaded rank: rank totals differ by at
    most one shard's clips. ``batches`` (``train.batches_per_epoch``) must not exceed what the smallest
    rank holds; ``None`` takes all of it. A DataError names ``where`` when a rank would get no batch.
    """
    order = list(range(len(counts)))
    random.Random(stream_seed(seed, -1, -1, -1)).shuffle(order)
    workers = max(1, num_workers)
    per_rank = _balanced(order, counts, world_size)
    shards = tuple(tuple(tuple(w) for w in _balanced(r, counts, workers)) for r in per_rank)
    caps = [[sum(counts[i] for i in w) // batch_size for w in r] for r in shards]
    most = min(sum(c) for c in caps)
    if most < 1:
        raise DataError(
            f"{where}: {len(counts)} shard(s), {sum(counts)} clips cannot give each of {world_size} rank(s) x "
            f"{workers} loader worker(s) one batch of {batch_size} with loader.train_shards=split; use more, "
            "smaller shards (shards.samples_per_shard, docs/scaling.md) or loader.train_shards=resample")
    if batches is None:
        batches = most
    elif batches > most:
        raise DataError(f"{where}: train.batches_per_epoch={batches} but with loader.train_shards=split the "
                        f"smallest of {world_size} rank(s) holds {most} batch(es) of {batch_size} per epoch")
    quotas = []
    for cap in caps:  # deal the rank's batches to its workers in turn, skipping a full one
        q, w = [0] * workers, 0
        for _ in range(batches):
            while q[w] >= cap[w]:
                w = (w + 1) % workers
            q[w] += 1
            w = (w + 1) % workers
        quotas.append(tuple(q))
    return SplitPlan(shards, tuple(quotas), batches, sum(counts), batches * batch_size * world_size)


def _train_counts(manifest: dict[str, Any]) -> list[int]:
    return [int(s["count"]) for s in manifest["shards"] if s["count"] > 0]


def train_batches_per_epoch(manifest: dict[str, Any], batch_size: int, world_size: int, *, train_shards: str = "resample",
                            num_workers: int = 0, seed: int = 0, requested: int = 0, where: str = "the training split") -> int:
    """Batches each rank yields per epoch in train mode (what the engine loops over).

    ``requested`` > 0 (``train.batches_per_epoch``) is taken as it is (``split``: checked against the smallest
    rank); else ``resample``: clips // (batch x ranks), ``split``: the smallest rank's whole batches.
    """
    if train_shards == "split":
        return plan_split(_train_counts(manifest), batch_size, world_size, num_workers, seed,
                          requested or None, where).batches
    return requested if requested > 0 else max(1, int(manifest["num_samples"]) // (batch_size * world_size))


@dataclass
class _Spec:
    """Everything a reader worker needs (forked into DataLoader workers)."""

    urls: list[str]
    mode: str
    batch_size: int
    frames: bool | str  # False, True (decoded uint8) or "jpeg" (undecoded members)
    seed: int
    epoch: int
    rank: int
    world_size: int
    batches: int  # train: batches per epoch per rank
    shuffle_buffer: int
    skip_corrupt: bool
    num_samples: int
    tables: dict[str, SideTable] = field(default_factory=dict)
    verify: str = "shard"
    digests: dict[str, tuple[str, int | None]] = field(default_factory=dict)  # url -> (sha256, bytes)
    split: SplitPlan | None = None  # train_shards="split": who reads which shard


class _HashingReader:
    """A read-only file wrapper that hashes every byte as the tar parser reads it (no second pass).

    ``tarfile``'s stream mode (``r|``) only ever calls ``read``: skipped members (frames when
    ``frames=False``) are read and discarded, so they are hashed too.
    """

    def __init__(self, f: Any) -> None:
        self._f = f
        self.sha = hashlib.sha256()
        self.nbytes = 0

    def read(self, size: int = -1) -> bytes:
        b = self._f.read(size)
        self.sha.update(b)
        self.nbytes += len(b)
        return b

    def drain(self) -> None:
        """Hash the rest of the file: the tar parser stops at the end-of-archive block (padding, or
        anything appended after it, would otherwise escape the check)."""
        while self.read(1 << 20):
            pass


class _ShardMismatch(Exception):
    """A shard read to its end whose bytes differ from its manifest entry (message names it)."""


def _iter_tar(url: str, frames: bool, digest: tuple[str, int | None] | None = None) -> Iterator[dict[str, Any]]:
    """Samples of one shard (members grouped by key), as webdataset's tar expander + group_by_keys.

    With ``digest`` = (sha256, bytes) the stream is hashed as it is read; after the last sample the
    rest of the file is hashed and a mismatch raises :class:`_ShardMismatch`.
    """
    from webdataset.tariterators import base_plus_ext, tar_file_iterator

    def select(name: str) -> bool:
        _check_member_name(name)  # every regular member, before its bytes are read
        return frames or not S.is_frame_member(name)

    with open(url, "rb") as raw_file:
        f = _HashingReader(raw_file) if digest is not None else raw_file
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
            yield cur  # decoded (and checked) before the hash verdict: the most specific error wins
        if digest is not None:
            f.drain()
            want, size = digest
            got = f.sha.hexdigest()
            if got != want:
                what = (f"{'truncated' if f.nbytes < size else 'grown'}: {f.nbytes} bytes, the manifest says {size}"
                        if size is not None and f.nbytes != size else f"sha256 {got[:12]}... != manifest {want[:12]}...")
                raise _ShardMismatch(f"shard {url} does not match its manifest ({what}): it changed after the "
                                     "build; rebuild the shards (python shards/build.py) or restore the file")


class _UnsafeMember(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _check_member_name(name: str) -> None:
    """Reject member names that could escape a folder if anyone ever extracted the shard (tar slip)."""
    parts = name.replace("\\", "/").split("/")
    if not name or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts or "\0" in name:
        raise _UnsafeMember(name)


def _corrupt(key: str, url: str, e: BaseException) -> DataError:
    return DataError(f"corrupt sample {key} in shard {url}: {type(e).__name__}: {e}")


def _decode(raw: dict[str, Any], spec: _Spec) -> dict[str, Any]:
    """Everything but the frames, which stay encoded until the batch is assembled (after the shuffle)."""
    key, url = raw["__key__"], raw["__url__"]
    try:
        meta = S.decode_meta(raw[S.META_EXT])
        audio, _sr = S.decode_audio(raw[S.AUDIO_EXT], float(meta.get("audio_gain", 1.0)))  # (T,)
        if audio.shape[0] != spec.num_samples:
            raise ValueError(f"audio has {audio.shape[0]} samples, expected {spec.num_samples}")
        modes = S.decode_npy(raw[S.MODES_EXT]).astype(np.float32, copy=False)  # (3, D)
        out = {"key": key, "url": url, "audio": audio, "modes": modes, "material": int(meta["material_index"]),
               "meta": meta}
        if spec.frames:
            lengths = [int(n) for n in meta["frame_bytes"]]
            data = raw[S.FRAMES_EXT]
            if sum(lengths) != len(data):
                raise ValueError(f"frame lengths sum to {sum(lengths)} bytes, member holds {len(data)}")
            out["frames_jpeg"] = (data, lengths)
        return out
    except Exception as e:  # any member missing or undecodable: the sample is corrupt
        raise _corrupt(key, url, e) from e


def _collate(items: list[dict[str, Any]], spec: _Spec, frames: torch.Tensor | None) -> dict[str, Any]:
    keys = [it["key"] for it in items]
    batch: dict[str, Any] = {
        "key": keys,
        "audio": torch.from_numpy(np.stack([it["audio"] for it in items])),  # (B, T)
        "modes": torch.from_numpy(np.stack([it["modes"] for it in items])),  # (B, 3, D)
        "material": torch.tensor([it["material"] for it in items], dtype=torch.long),  # (B,)
        "meta": [it["meta"] for it in items],
    }
    if frames is not None:
        batch["frames"] = S.frames_chw(frames[: len(items)])  # (B, F, 3, H, W) uint8, channels-last storage
    elif spec.frames == "jpeg":  # (N,) uint8 all JPEGs, (B, F) their lengths: for sample.decode_frame_batch
        batch["frames_jpeg"], batch["frame_bytes"] = S.pack_frame_members([it["frames_jpeg"] for it in items])
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

    def _shard(self, url: str, skips: list[str]) -> Iterator[dict[str, Any]]:
        """One shard's samples; with ``verify="shard"`` none before the whole file has matched its hash."""
        sp = self.spec
        digest = sp.digests.get(url) if sp.verify != "off" else None
        held: list[dict[str, Any]] = []
        passed = 0
        try:
            for raw in _iter_tar(url, bool(sp.frames), digest):
                try:
                    item = _decode(raw, sp)
                except DataError as e:
                    if not sp.skip_corrupt:
                        raise
                    skips.append(f"sample: {e}")
                    continue
                if digest is not None and sp.verify == "shard":
                    held.append(item)  # ~0.25 MB a clip at 224 px: a 64-clip shard is ~16 MB
                else:
                    passed += 1
                    yield item
        except _ShardMismatch as e:
            fate = (f"none of its {len(held)} samples used" if sp.verify == "shard"
                    else f"{passed} of its samples were already yielded (verify='stream')")
            raise _ShardMismatch(f"{e}; {fate}") from None
        yield from held

    def _samples(self, urls: Iterator[str], skips: list[str], pool: int = 0, bad: set[str] | None = None
                 ) -> Iterator[dict[str, Any]]:
        """Samples of ``urls`` in turn; a corrupt shard raises, or (skip_corrupt) is skipped and never read again
        (``bad``); when all ``pool`` shards a train reader can draw are bad, nothing is left to train on."""
        sp = self.spec
        bad = set() if bad is None else bad
        for url in urls:
            if url in bad:
                continue
            try:
                yield from self._shard(url, skips)
            except DataError:
                raise
            except Exception as e:  # _ShardMismatch, tarfile.ReadError, truncated stream, OSError
                msg = str(e) if isinstance(e, _ShardMismatch) else f"corrupt or truncated shard {url}: {type(e).__name__}: {e}"
                if not sp.skip_corrupt:
                    raise DataError(msg) from e
                skips.append(f"shard: {msg}")
                bad.add(url)  # resampling would draw it again: read it at most once
                if pool and len(bad) == pool:
                    raise DataError(f"every shard {'' if sp.split is None else 'of this reader '}is corrupt "
                                    f"({len(bad)} shards, first {sorted(bad)[0]})") from e

    def _own_passes(self, rng: random.Random, worker: int, skips: list[str]) -> Iterator[dict[str, Any]]:
        """Split mode: this (rank, worker)'s own shards, each read once per pass, each pass shuffled on its own.

        One pass holds the quota (plan_split counts whole batches of the manifest's clips); the shuffle
        buffer drains before a second pass starts, and a second pass starts only when skipped (corrupt)
        clips left the reader short: said as a notice, like a skip.
        """
        from webdataset.filters import _shuffle

        sp = self.spec
        assert sp.split is not None
        own = [sp.urls[i] for i in sp.split.shards[sp.rank][worker]]
        bad: set[str] = set()
        for n in range(1 << 30):
            if n:
                skips.append(f"re-reading the {len(own)} shard(s) of rank {sp.rank} worker {worker} (pass {n + 1}): "
                             "skipped clips left it short of its batches for this epoch")
            got = 0
            urls = iter(rng.sample(own, len(own)))
            for item in _shuffle(self._samples(urls, skips, len(own), bad), bufsize=sp.shuffle_buffer,
                                 initial=sp.shuffle_buffer, rng=rng):
                got += 1
                yield item
            if not got:
                raise DataError(f"rank {sp.rank} worker {worker}: its {len(own)} shard(s) hold no readable clip")

    def _fill(self, samples: Iterator[dict[str, Any]], skips: list[str]) -> tuple[list[dict[str, Any]], torch.Tensor | None]:
        """The next batch: up to batch_size samples, frames decoded into one (B, F, H, W, 3) buffer.

        A clip whose JPEGs fail to decode is an error naming it, or (skip_corrupt) a counted skip
        replaced by the next sample, so train batches stay full.
        """
        sp = self.spec
        items: list[dict[str, Any]] = []
        buf: torch.Tensor | None = None
        decode = sp.frames is True
        while len(items) < sp.batch_size:
            item = next(samples, None)
            if item is None:
                break
            if decode:
                try:
                    hwc = S.decoded_frames(*item["frames_jpeg"])  # F x (H, W, 3)
                    if buf is None:  # shared memory inside a worker: sent to the main process as a handle
                        buf = S.shared_uint8((sp.batch_size, len(hwc), *hwc[0].shape))  # (B, F, H, W, 3)
                    S.stack_frames(hwc, buf[len(items)])
                except Exception as e:  # undecodable JPEG, or a clip whose frames differ from the batch's
                    err = _corrupt(item["key"], item["url"], e)
                    if not sp.skip_corrupt:
                        raise err from e
                    skips.append(f"sample: {err}")
                    continue
                del item["frames_jpeg"]
            items.append(item)
        return items, buf

    def _batches(self, skips: list[str]) -> Iterator[dict[str, Any]]:
        sp = self.spec
        info = get_worker_info()
        worker, nworkers = (info.id, info.num_workers) if info is not None else (0, 1)
        rng = random.Random(stream_seed(sp.seed, sp.epoch, sp.rank, worker))
        if sp.mode == "train" and sp.split is not None:
            if nworkers != len(sp.split.quotas[sp.rank]):
                raise RuntimeError(f"split plan made for {len(sp.split.quotas[sp.rank])} workers, run by {nworkers}")
            samples = self._own_passes(rng, worker, skips)
            quota: int | None = sp.split.quotas[sp.rank][worker]
        elif sp.mode == "train":
            from webdataset.filters import _shuffle

            samples = self._samples(self._urls(rng, worker, nworkers), skips, len(sp.urls))
            samples = _shuffle(samples, bufsize=sp.shuffle_buffer, initial=sp.shuffle_buffer, rng=rng)
            quota = sp.batches // nworkers + (1 if worker < sp.batches % nworkers else 0)
        else:
            samples = self._samples(self._urls(rng, worker, nworkers), skips)
            quota = None
        made = 0
        while quota is None or made < quota:
            items, frames = self._fill(samples, skips)
            if not items or (quota is not None and len(items) < sp.batch_size):
                break
            batch = _collate(items, sp, frames)
            batch[_SKIPS], skips[:] = list(skips), []
            made += 1
            yield batch

    def __iter__(self) -> Iterator[dict[str, Any]]:
        skips: list[str] = []
        try:
            yield from self._batches(skips)
        except DataError as e:
            if get_worker_info() is None:
                raise
            # In a worker: hand the message over as data. Raised here, torch would re-raise it in the
            # main process as "Caught DataError in DataLoader worker process N" + the worker's
            # traceback; ShardLoader raises it there as the same one-line DataError instead.
            yield {_SKIPS: list(skips), _ERROR: str(e)}
            return
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

    @property
    def split_plan(self) -> SplitPlan | None:
        """``train_shards="split"``: which shards every (rank, worker) reads (else None)."""
        return self.spec.split

    def shard_names(self) -> list[str]:
        """Split mode: the manifest names of the shards this rank reads every epoch."""
        if self.spec.split is None:
            raise TypeError("only a train loader with train_shards='split' owns a fixed set of shards")
        shards = [s["name"] for s in self.manifest["shards"] if s["count"] > 0]
        return [shards[i] for i in self.spec.split.rank_shards(self.spec.rank)]

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
                log.info(f"[reader] skip {len(self.skipped)} (rank {self.spec.rank}, epoch {self.spec.epoch}): {notice}")
            if _ERROR in batch:
                raise DataError(batch[_ERROR])  # the worker's own one-line message
            if batch:
                yield batch


def make_loader(
    shard_root: str | Path,
    split: str,
    *,
    batch_size: int,
    mode: str = "train",
    frames: bool | str = False,
    seed: int = 0,
    epoch: int = 0,
    num_workers: int = 0,
    batches_per_epoch: int | None = None,
    shuffle_buffer: int = 256,
    skip_corrupt: bool = False,
    side_tables: Mapping[str, str | Path | SideTable] | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    verify: str = "shard",
    train_shards: str = "resample",
) -> ShardLoader:
    """The batch stream of ``<shard_root>/<split>`` for this rank (see the module docstring for modes,
    ``frames`` = False / True / "jpeg", ``verify`` = "shard" / "stream" / "off" and, in train mode,
    ``train_shards`` = "resample" / "split")."""
    if mode not in ("train", "eval"):
        raise ValueError(f"mode must be 'train' or 'eval', got {mode!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if verify not in VERIFY_MODES:
        raise ValueError(f"verify must be one of {VERIFY_MODES}, got {verify!r}")
    if frames not in FRAME_MODES:
        raise ValueError(f"frames must be False, True or 'jpeg', got {frames!r}")
    if train_shards not in TRAIN_SHARDS:
        raise ValueError(f"train_shards must be one of {TRAIN_SHARDS}, got {train_shards!r}")
    manifest = load_manifest(shard_root, split)
    root = Path(shard_root)
    shards = [s for s in manifest["shards"] if s["count"] > 0]
    urls = [str(root / s["name"]) for s in shards]
    # Entries without a sha256 (hand-made manifests) are read unverified.
    digests = {str(root / s["name"]): (str(s["sha256"]), s.get("bytes")) for s in shards if s.get("sha256")}
    r, w = dist_info()
    rank = r if rank is None else rank
    world_size = w if world_size is None else world_size
    n = int(manifest["num_samples"])
    plan = None
    if mode == "train":
        if not urls:
            raise DataError(f"split {split} under {shard_root} holds no samples")
        if train_shards == "split":
            plan = plan_split([s["count"] for s in shards], batch_size, world_size, num_workers, seed,
                              batches_per_epoch, where=f"split {split} under {shard_root}")
            batches = plan.batches
        else:
            batches = batches_per_epoch if batches_per_epoch is not None else max(1, n // (batch_size * world_size))
    else:
        batches = 0
    tables = {name: t if isinstance(t, SideTable) else read_side_table(t) for name, t in (side_tables or {}).items()}
    spec = _Spec(urls, mode, batch_size, frames, seed, epoch, rank, world_size, batches, shuffle_buffer,
                 skip_corrupt, int(manifest["sample"]["num_samples"]), tables, verify, digests, plan)
    return ShardLoader(spec, num_workers, manifest)
