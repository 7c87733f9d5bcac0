"""The retrieval index of inference (paper Sec. 3.4): visual latent nu -> physics latent mu.

At test time no sound exists, so the physics latent of a test clip is borrowed from the training
clip whose visual latent is nearest (Euclidean distance, as the paper says; the official code uses
L1 in a Python loop, see docs/deviations.md). The index is the key-value table
``keys (N, Dk) = nu_train``, ``values (N, Dv) = mu_train``, plus the clip key of each row.

On disk an index is two files side by side::

    index.safetensors   tensors "keys" (N, Dk) float32, "values" (N, Dv) float32,
                        "clip_keys_utf8" (L,) uint8  -- the clip keys joined by "\\n", UTF-8
    index.json          manifest: format, metric, dims, count, created, diffusion run id,
                        data manifest hash, the safetensors file's sha256, and any extra fields

Clip keys are stored as one byte tensor rather than in the safetensors header so a million keys
do not blow the header's size limit.

Query: :func:`query` finds the exact k nearest keys of a batch of queries with ``torch.cdist`` +
``torch.topk`` in chunks (faiss optional), so memory stays ``O(query_batch * chunk_size)`` whatever N
is; the candidates of the fast matmul distances are re-ranked exactly (:mod:`physdiff.retrieval.search`).
It runs on the query's device. Ties are broken deterministically: among equal distances the lower
row index wins, exactly as a stable sort of the full distance matrix would order them::

    index = build_index(nu, mu, clip_keys, {"diffusion_run_id": rid, "data_manifest_hash": h}, "run/index.safetensors")
    index = load_index("run/index.safetensors").to("cuda")
    dist, idx = query(index, nu_test.cuda(), k=5)          # (B, 5), (B, 5)
    mu = index.values[idx[:, 0]]                           # (B, Dv)
"""

from __future__ import annotations

import datetime as _dt
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from physdiff.checksum import file_sha256
from physdiff.errors import DataError, PhysdiffError
from physdiff.fileio import atomic_output, atomic_write_json

__all__ = [
    "INDEX_FORMAT",
    "RetrievalIndex",
    "build_index",
    "load_index",
    "manifest_path",
    "query",
    "retrieve",
    "log_index_to_mlflow",
]

INDEX_FORMAT = "physdiff-retrieval-index/1"
_REQUIRED_MANIFEST = ("diffusion_run_id", "data_manifest_hash")


@dataclass
class RetrievalIndex:
    """An in-memory index. ``keys`` (N, Dk) and ``values`` (N, Dv) are float32 on one device."""

    keys: torch.Tensor
    values: torch.Tensor
    clip_keys: list[str]
    manifest: dict[str, Any] = field(default_factory=dict)
    # Per-index state of the search backend (a faiss index of the keys), never saved or compared.
    _search_cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.keys.dim() != 2 or self.values.dim() != 2:
            raise ValueError(f"index keys and values must be 2-D, got {tuple(self.keys.shape)}, {tuple(self.values.shape)}")
        if self.keys.shape[0] != self.values.shape[0] or self.keys.shape[0] != len(self.clip_keys):
            raise ValueError(
                f"index rows disagree: {self.keys.shape[0]} keys, {self.values.shape[0]} values, "
                f"{len(self.clip_keys)} clip keys"
            )

    def __len__(self) -> int:
        return self.keys.shape[0]

    @property
    def key_dim(self) -> int:
        return self.keys.shape[1]

    @property
    def value_dim(self) -> int:
        return self.values.shape[1]

    @property
    def device(self) -> torch.device:
        return self.keys.device

    def to(self, device: str | torch.device) -> "RetrievalIndex":
        """Move keys and values (e.g. to the GPU once, before many queries)."""
        return RetrievalIndex(self.keys.to(device), self.values.to(device), self.clip_keys, self.manifest)


def manifest_path(path: str | Path) -> Path:
    """The JSON manifest beside an index file: ``index.safetensors`` -> ``index.json``."""
    return Path(path).with_suffix(".json")


def _check_finite(x: torch.Tensor, what: str) -> None:
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).any(dim=-1).sum()) if x.dim() == 2 else -1
        raise DataError(f"{what} contains NaN or infinite values ({bad} rows)")


def build_index(
    keys: torch.Tensor,
    values: torch.Tensor,
    clip_keys: list[str],
    manifest: dict[str, Any],
    path: str | Path,
) -> RetrievalIndex:
    """Save the key-value pairs ``nu -> mu`` as one safetensors file plus a JSON manifest.

    Args:
        keys: (N, Dk) visual latents nu of the training clips.
        values: (N, Dv) physics latents mu of the same clips (same row order).
        clip_keys: N clip identifiers (unique, no newlines), row-aligned.
        manifest: provenance; must hold ``diffusion_run_id`` and ``data_manifest_hash``. Extra
            JSON-able fields are kept. ``format``, ``metric``, dims, count, ``created`` and the
            file's ``sha256`` are filled in here.
        path: the ``.safetensors`` file to write; the manifest goes beside it (:func:`manifest_path`).

    Returns the index (keys/values as float32 on the CPU). Both files are written atomically.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"index path must end in .safetensors, got {path}")
    missing = [k for k in _REQUIRED_MANIFEST if k not in manifest]
    if missing:
        raise ValueError(f"index manifest is missing {missing} (needed to trace the index to its run and data)")
    keys = keys.detach().to("cpu", torch.float32).contiguous()  # (N, Dk)
    values = values.detach().to("cpu", torch.float32).contiguous()  # (N, Dv)
    clip_keys = [str(c) for c in clip_keys]
    if keys.dim() != 2 or values.dim() != 2 or keys.shape[0] != values.shape[0] or keys.shape[0] != len(clip_keys):
        raise ValueError(
            f"build_index needs keys (N, Dk), values (N, Dv) and N clip keys; got {tuple(keys.shape)}, "
            f"{tuple(values.shape)}, {len(clip_keys)} clip keys"
        )
    if keys.shape[0] == 0:
        raise ValueError("build_index: no training clips to index")
    _check_finite(keys, "index keys (visual latents)")
    _check_finite(values, "index values (physics latents)")
    bad = [c for c in clip_keys if "\n" in c]
    if bad:
        raise ValueError(f"clip keys may not contain newlines: {bad[:3]}")
    if len(set(clip_keys)) != len(clip_keys):
        dup = sorted({c for c in clip_keys if clip_keys.count(c) > 1})[:3] if len(clip_keys) < 10000 else "..."
        raise ValueError(f"clip keys must be unique; duplicated: {dup}")

    blob = torch.frombuffer(bytearray("\n".join(clip_keys).encode("utf-8")), dtype=torch.uint8)  # (L,)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        save_file({"keys": keys, "values": values, "clip_keys_utf8": blob.clone()}, str(tmp),
                  metadata={"format": INDEX_FORMAT})

    full = dict(manifest)
    full.update(
        {
            "format": INDEX_FORMAT,
            "metric": "euclidean",
            "count": int(keys.shape[0]),
            "key_dim": int(keys.shape[1]),
            "value_dim": int(values.shape[1]),
            "created": full.get("created") or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "file": path.name,
            "sha256": file_sha256(path),
        }
    )
    mpath = manifest_path(path)
    atomic_write_json(mpath, full, sort_keys=True)
    return RetrievalIndex(keys, values, clip_keys, full)


def load_index(path: str | Path, device: str | torch.device = "cpu", verify_hash: bool = False) -> RetrievalIndex:
    """Load an index written by :func:`build_index`; checks the manifest against the tensors.

    ``verify_hash`` recomputes the file's sha256 (reads the file twice; off by default for big indexes).
    Any mismatch or unreadable file is a :class:`DataError` naming the file.
    """
    path = Path(path)
    mpath = manifest_path(path)
    if not path.is_file():
        raise DataError(f"retrieval index not found: {path}")
    if not mpath.is_file():
        raise DataError(f"retrieval index manifest not found: {mpath} (expected beside {path.name})")
    try:
        manifest = json.loads(mpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"retrieval index manifest {mpath} is not valid JSON: {e}") from None
    if manifest.get("format") != INDEX_FORMAT:
        raise DataError(f"{mpath}: unknown index format {manifest.get('format')!r} (expected {INDEX_FORMAT})")
    if verify_hash and manifest.get("sha256") != file_sha256(path):
        raise DataError(f"{path}: sha256 differs from its manifest {mpath.name} (file changed or truncated)")
    try:
        tensors = load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError) as e:
        raise DataError(f"cannot read retrieval index {path}: {e}") from None
    for name in ("keys", "values", "clip_keys_utf8"):
        if name not in tensors:
            raise DataError(f"retrieval index {path} has no tensor {name!r}")
    keys, values = tensors["keys"], tensors["values"]
    raw = bytes(tensors["clip_keys_utf8"].cpu().numpy().tobytes())
    clip_keys = raw.decode("utf-8").split("\n")
    n = manifest.get("count")
    if not (keys.shape[0] == values.shape[0] == len(clip_keys) == n):
        raise DataError(
            f"retrieval index {path} is inconsistent: manifest count {n}, {keys.shape[0]} keys, "
            f"{values.shape[0]} values, {len(clip_keys)} clip keys"
        )
    if keys.shape[1] != manifest.get("key_dim") or values.shape[1] != manifest.get("value_dim"):
        raise DataError(
            f"retrieval index {path}: dims {keys.shape[1]}/{values.shape[1]} differ from manifest "
            f"{manifest.get('key_dim')}/{manifest.get('value_dim')}"
        )
    return RetrievalIndex(keys, values, clip_keys, manifest)


# ----------------------------------------------------------------------------- query


def query(
    index: RetrievalIndex | torch.Tensor,
    q: torch.Tensor,
    k: int = 1,
    chunk_size: int = 32768,
    query_batch: int = 1024,
    rerank_margin: int = 8,
    backend: str = "torch",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean k-nearest keys of each query, exact, chunked so memory is bounded for any index size.

    Args:
        index: a :class:`RetrievalIndex` or a raw keys tensor (N, Dk).
        q: (B, Dk) or (Dk,) queries; the search runs on ``q``'s device (key chunks are moved there;
            move the index once with ``index.to(device)`` for repeated queries).
        k: neighbours per query (1 <= k <= N).
        chunk_size: keys per chunk; peak extra memory is about ``query_batch * chunk_size * 4`` bytes
            (one float32 distance buffer, plus the chunk of keys), whatever N is.
        query_batch: queries per pass over the keys.
        rerank_margin: extra candidates kept from the fast GEMM distances (``torch.cdist``'s matmul
            path) and re-ranked by exact distance; rows where rounding could still hide a neighbour
            are searched again exactly (:mod:`physdiff.retrieval.search`), so this only trades speed
            (0 sends every row to the exact, GEMM-free fallback).
        backend: ``"torch"`` (cdist + topk) or ``"faiss"`` (faiss's exhaustive ``IndexFlatL2`` for the
            candidates, on the CPU; needs ``pip install faiss-cpu``). Same result either way.

    Returns ``(dist (B, k), idx (B, k))``, ascending in distance; equal distances are ordered by
    row index (lowest first), as a stable sort of the full distance matrix would. Distances are the
    direct ``|q - key|`` (``torch.cdist`` without the matmul expansion), so a query equal to a key
    gets distance 0.
    """
    from physdiff.retrieval.search import BACKENDS, faiss_available, knn

    keys = index.keys if isinstance(index, RetrievalIndex) else index
    if q.dim() == 1:
        q = q.unsqueeze(0)
    if q.dim() != 2 or keys.dim() != 2 or q.shape[1] != keys.shape[1]:
        raise ValueError(f"query needs q (B, {keys.shape[-1]}) against keys (N, Dk); got q {tuple(q.shape)}, keys {tuple(keys.shape)}")
    N = keys.shape[0]
    if not 1 <= k <= N:
        raise ValueError(f"k must be in [1, {N}] for an index of {N} keys, got {k}")
    if chunk_size < 1 or query_batch < 1:
        raise ValueError("chunk_size and query_batch must be >= 1")
    if backend not in BACKENDS:
        raise ValueError(f"retrieval backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "faiss" and not faiss_available():
        raise PhysdiffError("retrieval backend 'faiss' needs the faiss package: pip install faiss-cpu "
                            "(or use backend 'torch', the default)")
    if N >= 2**32:
        raise ValueError(f"an index of {N} keys is beyond the 2^32 rows the exact tie-breaking supports")
    _check_finite(q, "retrieval queries")
    cache = index._search_cache if isinstance(index, RetrievalIndex) else None
    return knn(keys, q, k, chunk_size=chunk_size, query_batch=query_batch, rerank_margin=rerank_margin,
               backend=backend, cache=cache)


def retrieve(index: RetrievalIndex, q: torch.Tensor, k: int = 1, **kw: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Nearest neighbours and their values: ``(values (B, k, Dv), dist (B, k), idx (B, k))``.

    Values come back on ``q``'s device; ``[index.clip_keys[i] for i in idx[:, 0].tolist()]`` names
    the retrieved training clips.
    """
    dist, idx = query(index, q, k=k, **kw)
    vals = index.values[idx.reshape(-1).to(index.values.device)].view(*idx.shape, -1).to(q.device)  # (B, k, Dv)
    return vals, dist, idx


def log_index_to_mlflow(path: str | Path, run_id: str, tracking_uri: str | None = None, artifact_path: str = "index") -> bool:
    """Log the index file and its manifest as artifacts of the (diffusion) MLflow run.

    A tracking failure (server down, unknown run) is a warning, not an error: the index on disk is
    the source of truth. Returns True when both files were logged.
    """
    path = Path(path)
    try:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=tracking_uri)
        client.log_artifact(run_id, str(path), artifact_path)
        client.log_artifact(run_id, str(manifest_path(path)), artifact_path)
        return True
    except Exception as e:  # noqa: BLE001 -- any tracking failure must not lose the computed index
        warnings.warn(f"could not log retrieval index {path} to MLflow run {run_id}: {type(e).__name__}: {e}", stacklevel=2)
        return False
