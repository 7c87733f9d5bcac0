"""Side tables: per-clip vectors exported by later stages, joined to the shards by sample key.

The prior stage exports (w, gamma) and the video stage (nu, logits) for every clip of a split as one
safetensors file per split. Layout of a side table file:

- tensors: named arrays, each of shape (N, ...) with row i belonging to ``keys[i]``;
- metadata (safetensors' string map): ``"keys"`` = JSON list of the N sample keys (the shard keys
  ``<video id>_<onset sample>``), ``"meta"`` = JSON object (producer, config hash, run id, ...).

No pickle: safetensors stores raw arrays and a JSON header. The reader joins a table by key:
``make_loader(..., side_tables={"prior": path})`` adds ``batch["prior/<array name>"]`` (B, ...)
for every array of the table; a sample key absent from the table is an error naming both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from physdiff.errors import DataError
from physdiff.fileio import atomic_output


@dataclass
class SideTable:
    """Arrays (N, ...) aligned with ``keys``; ``index[key]`` is the row of a key."""

    path: Path
    keys: list[str]
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]

    def __post_init__(self) -> None:
        self.index = {k: i for i, k in enumerate(self.keys)}

    def rows(self, keys: list[str]) -> np.ndarray:
        """Row indices of ``keys``; raises DataError naming the first missing key and the table."""
        try:
            return np.fromiter((self.index[k] for k in keys), dtype=np.int64, count=len(keys))
        except KeyError as e:
            raise DataError(f"sample key {e.args[0]!r} is not in side table {self.path} ({len(self.keys)} keys)") from None

    def lookup(self, keys: list[str]) -> dict[str, np.ndarray]:
        """{array name: (B, ...)} for ``keys``."""
        idx = self.rows(keys)
        return {name: a[idx] for name, a in self.arrays.items()}


def write_side_table(path: str | Path, keys: list[str], arrays: Mapping[str, Any], meta: dict[str, Any] | None = None) -> Path:
    """Write named (N, ...) arrays for N sample keys to a safetensors file (atomically: temporary name, then rename)."""
    from safetensors.numpy import save_file

    path = Path(path)
    keys = [str(k) for k in keys]
    if len(set(keys)) != len(keys):
        raise DataError(f"side table {path}: duplicate sample keys")
    out: dict[str, np.ndarray] = {}
    for name, a in arrays.items():
        if hasattr(a, "detach"):  # a torch tensor
            a = a.detach().cpu().numpy()
        a = np.ascontiguousarray(np.asarray(a))
        if a.shape[:1] != (len(keys),):
            raise DataError(f"side table {path}: array {name!r} has shape {a.shape}, expected ({len(keys)}, ...)")
        out[name] = a
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        save_file(out, str(tmp), metadata={"keys": json.dumps(keys), "meta": json.dumps(meta or {}, sort_keys=True)})
    return path


def read_side_table(path: str | Path) -> SideTable:
    """Load a side table written by :func:`write_side_table`; raises DataError naming the file if unreadable."""
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise DataError(f"missing side table {path}")
    try:
        with safe_open(str(path), framework="np") as f:
            md = f.metadata() or {}
            arrays = {name: f.get_tensor(name) for name in f.keys()}
        keys = json.loads(md["keys"])
        meta = json.loads(md.get("meta", "{}"))
    except (KeyError, ValueError, OSError, json.JSONDecodeError) as e:
        raise DataError(f"unreadable side table {path}: {e!r}") from e
    except Exception as e:  # safetensors raises its own SafetensorError for a corrupt header
        if type(e).__name__ != "SafetensorError":
            raise
        raise DataError(f"corrupt side table {path}: {e}") from e
    for name, a in arrays.items():
        if a.shape[:1] != (len(keys),):
            raise DataError(f"side table {path}: array {name!r} has {a.shape[0]} rows for {len(keys)} keys")
    return SideTable(path, keys, arrays, meta)
