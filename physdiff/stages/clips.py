"""The clips the evaluation reads: a split's recordings, labels and modes with upstream exports joined by key.

    test = load_split(cfg, "test")                   # audio (N, T), labels (N,), modes (N, 3, D), nu, logits
    keys, nu = training_nu(cfg)                     # every training clip's nu (the retrieval keys)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from physdiff import identity
from physdiff.artifacts import read_export
from physdiff.errors import DataError


@dataclass
class SplitClips:
    """One split's clips in shard order: keys, labels (N,), audio (N, T), modes (N, 3, D), the video export's
    nu / logits, and any extra side-table arrays (``extra["prior/weight"]``, ...)."""

    keys: list[str]
    labels: Tensor
    audio: Tensor
    nu: Tensor
    logits: Tensor
    modes: Tensor
    extra: dict[str, Tensor] = field(default_factory=dict)


def video_tables(cfg: Any) -> dict[str, Path]:
    from physdiff.inference.load import upstream_run

    return read_export(upstream_run(cfg, "video"), "video").splits


def load_split(cfg: Any, split: str, keys: set[str] | None = None, extra_tables: dict[str, Path] | None = None) -> SplitClips:
    """Clips of ``split`` (only ``keys`` when given) with the video export (and ``extra_tables``) joined by key."""
    from physdiff.data.reader import make_loader

    tables = video_tables(cfg)
    if split not in tables:
        raise DataError(f"the video export has no '{split}' split")
    side = {"video": tables[split], **(extra_tables or {})}
    cols: dict[str, list[Any]] = {}
    ks: list[str] = []
    shards = identity.shards_dir(cfg)
    for b in make_loader(shards, split, batch_size=64, mode="eval", side_tables=side):
        for j, k in enumerate(b["key"]):
            if keys is not None and k not in keys:
                continue
            ks.append(str(k))
            for name in ("material", "audio", "modes", "video/nu", "video/logits",
                         *[c for c in b if "/" in c and not c.startswith("video/")]):
                cols.setdefault(name, []).append(torch.as_tensor(b[name][j]))
    if not ks:
        raise DataError(f"no clips in the {split} split under {shards}")
    st = {k: torch.stack(v) for k, v in cols.items()}
    extra = {k: v.float() for k, v in st.items() if "/" in k and not k.startswith("video/")}
    return SplitClips(ks, st["material"].long(), st["audio"].float(), st["video/nu"].float(), st["video/logits"].float(),
                      st["modes"].float(), extra)


def training_nu(cfg: Any) -> tuple[list[str], Tensor]:
    """(keys, nu (N, D)) of every training clip, from the video export."""
    from physdiff.data.sidetable import read_side_table

    t = read_side_table(video_tables(cfg)["train"])
    return list(t.keys), torch.from_numpy(t.arrays["nu"]).float()
