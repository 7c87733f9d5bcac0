"""Real file faults on real shards: re-shard a split, truncate a shard, damage one member in place."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from pathlib import Path


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
        entries.append({"name": name, "count": len(group)})
    man.update(shards=entries, num_shards=len(entries))
    (dst_root / "train" / "manifest.json").write_text(json.dumps(man, indent=1))
    return shards


def truncate(shard: Path, fraction: float = 0.6) -> None:
    """Cut the shard inside a member (what a copy killed halfway leaves). Atomic: readers see old or new."""
    data = shard.read_bytes()
    tmp = shard.with_suffix(".tmp")
    tmp.write_bytes(data[: int(len(data) * fraction)])
    os.replace(tmp, shard)


def damage_member(shard: Path, sample: int, ext: str = ".flac") -> str:
    """Overwrite the ``ext`` member of the ``sample``-th sample with junk of the same size (the tar stays
    valid: the damage is inside one member, in the middle of the shard). Returns that sample's key."""
    with tarfile.open(shard) as t:
        members = [(m, t.extractfile(m).read()) for m in t.getmembers()]
    keys = []
    for m, _ in members:
        k = m.name.split(".", 1)[0]
        if k not in keys:
            keys.append(k)
    key = keys[sample]
    tmp = shard.with_suffix(".tmp")
    with tarfile.open(tmp, "w") as out:
        for m, data in members:
            if m.name == key + ext:
                data = bytes((37 * i + 11) % 251 for i in range(len(data)))  # not FLAC
            out.addfile(m, io.BytesIO(data))
    os.replace(tmp, shard)
    return key
