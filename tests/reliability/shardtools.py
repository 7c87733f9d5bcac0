"""Real file faults on real shards: re-shard a split, truncate a shard, damage or rescale one member in place."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np

from physdiff.checksum import file_sha256
from physdiff.fileio import atomic_output, atomic_write_bytes


def reshard(src_root: Path, dst_root: Path, per_shard: int) -> list[Path]:
    """Copy a shard root, rewriting its train split as shards of ``per_shard`` samples (same members, order)."""
    shutil.copytree(src_root / "test", dst_root / "test")
    man = json.loads((src_root / "train" / "manifest.json").read_text())
    members: list[tuple[tarfile.TarInfo, bytes]] = []
    for s in man["shards"]:
        with tarfile.open(src_root / s["name"]) as t:
            members += [(m, t.extractfile(m).read()) for m in t.getmembers() if m.isreg()]
    keys: list[str] = []
    for m, _ in members:
        k = m.name.split(".", 1)[0]
        if k not in keys:
            keys.append(k)
    (dst_root / "train").mkdir(parents=True)
    shards, entries = [], []
    for i in range(0, len(keys), per_shard):
        group = set(keys[i:i + per_shard])
        name = f"train/train-r{i // per_shard:03d}.tar"
        with tarfile.open(dst_root / name, "w") as out:
            for m, data in members:
                if m.name.split(".", 1)[0] in group:
                    out.addfile(m, io.BytesIO(data))
        shards.append(dst_root / name)
        # As the build records them: the reader verifies each shard's bytes against these while reading.
        entries.append({"name": name, "count": len(group), "bytes": (dst_root / name).stat().st_size,
                        "sha256": file_sha256(dst_root / name)})
    man.update(shards=entries, num_shards=len(entries))
    (dst_root / "train" / "manifest.json").write_text(json.dumps(man, indent=1))
    return shards


def truncate(shard: Path, fraction: float = 0.6) -> None:
    """Cut the shard inside a member (what a copy killed halfway leaves). Atomic: readers see old or new."""
    data = shard.read_bytes()
    atomic_write_bytes(shard, data[: int(len(data) * fraction)])


def damage_member(shard: Path, sample: int, ext: str = ".flac") -> str:
    """Overwrite the ``ext`` member of the ``sample``-th sample with junk of the same size (the tar stays
    valid: the damage is inside one member, in the middle of the shard). Returns that sample's key."""
    return _rewrite_member(shard, sample, ext, lambda data: bytes((37 * i + 11) % 251 for i in range(len(data))))  # not FLAC


def _rewrite_member(shard: Path, sample: int, ext: str, change) -> str:
    """Replace the ``ext`` member of the ``sample``-th sample by ``change(bytes)`` (same tar layout)."""
    with tarfile.open(shard) as t:
        members = [(m, t.extractfile(m).read()) for m in t.getmembers()]
    keys: list[str] = []
    for m, _ in members:
        k = m.name.split(".", 1)[0]
        if k not in keys:
            keys.append(k)
    key = keys[sample]
    with atomic_output(shard) as tmp, tarfile.open(tmp, "w") as out:
        for m, data in members:
            if m.name == key + ext:
                data = change(data)
                m.size = len(data)
            out.addfile(m, io.BytesIO(data))
    return key


def scale_modes(shard: Path, sample: int, factor: float = 3.0) -> str:
    """Multiply the ``sample``-th sample's modes (f, p, lambda) by ``factor``: still a valid ``.npy`` of
    the same shape and size, in a valid tar, so nothing but the shard's sha256 can tell. Returns the key."""
    def change(data: bytes) -> bytes:
        a = np.load(io.BytesIO(data), allow_pickle=False)
        buf = io.BytesIO()
        np.save(buf, (a * factor).astype(a.dtype), allow_pickle=False)
        assert len(buf.getvalue()) == len(data)
        return buf.getvalue()

    return _rewrite_member(shard, sample, ".modes.npy", change)
