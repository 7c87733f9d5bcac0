"""Exact Euclidean k-nearest-neighbour search on ``torch.cdist`` + ``torch.topk`` (faiss optional).

The retrieval of inference (paper Sec. 3.4) asks, for each test visual latent, the training row whose
key is nearest. The contract, whatever the backend, chunk size or device:

- **exact**: the k returned rows are the k smallest ``|q - key|`` as computed directly in float32
  (``torch.cdist(..., compute_mode="donot_use_mm_for_euclid_dist")``), and so are the distances;
- **deterministic ties**: among equal distances the lower row index comes first, exactly as a stable
  sort of the full distance matrix would order them;
- **bounded memory**: ``O(query_batch x chunk_size)`` whatever the number of keys N.

How (three steps per batch of queries)::

    dist, idx = knn(keys, q, k=5)                       # (B, 5), (B, 5)
    dist, idx = knn(keys, q, k=5, backend="faiss")      # same result, faiss's flat index for step 1

1. *Candidates*: per chunk of keys, ``torch.cdist`` on its matrix-multiply path (``|q|^2 + |k|^2 - 2 q.k``,
   one GEMM: the fast path, but inexact near ties and near zero) and ``torch.topk`` keep the
   ``k + rerank_margin`` smallest; chunks merge by another ``topk``. With ``backend="faiss"`` an
   ``IndexFlatL2`` (exhaustive, also GEMM based) gives the candidates instead.
2. *Exact re-rank*: the candidates' distances are recomputed directly (no GEMM) and sorted by the
   64-bit key ``(float32 bits of the distance) << 32 | row``: for non-negative floats the bit pattern
   orders like the value, so this one integer sorts by (distance, row) with no ties left.
3. *Certificate*: the GEMM distances carry a rounding error of at most ``delta`` (a standard float32
   dot-product bound, below). Every key left out of the candidates has a GEMM squared distance
   ``>= T`` (the largest kept), so a true squared distance ``>= T - delta``. When ``T - delta`` exceeds
   the k-th exact squared distance, no left-out key can enter the top k or tie with it: the answer is
   exact. Rows without that certificate (many keys within rounding of each other, e.g. a block of
   duplicates larger than the margin) are searched again exactly over all keys with the direct
   distance and the same 64-bit keys, chunked. On random 256-d keys that fallback never runs; on
   heavily tied data it is what keeps the order exact.

The bound: the GEMM form is a dot product of length D + 2 of augmented vectors whose terms sum in
absolute value to at most ``2 (|q|^2 + |k|^2)``, plus the two norms; any summation order (blocked,
FMA, split-K on a GPU) stays within ``gamma_n * sum|terms|`` with ``gamma_n ~ n u`` (u = 2^-24), and
the direct distance, its square root and its square add less than that again. We use
``delta = 6 (D + 2) u (|q|^2 + max_j |k_j|^2)``: loose by design (a looser bound only sends more rows
to the exact fallback). TF32 would break it, so the GEMM runs at full float32 precision whatever
``torch.backends.cuda.matmul.allow_tf32`` says.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch

_U = 2.0**-24  # float32 unit roundoff
_SAFETY = 6.0  # delta = _SAFETY * (D + 2) * u * (|q|^2 + max |k|^2), see the module docstring
BACKENDS = ("torch", "faiss")


def faiss_available() -> bool:
    """Whether the optional faiss package (``pip install faiss-cpu``) can be imported."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


@contextlib.contextmanager
def _full_fp32_matmul() -> Iterator[None]:
    """float32 GEMMs at full precision inside (TF32 would void the error bound of the certificate)."""
    prev = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(prev)


def _order_keys(dist: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """(..., C) non-negative float32 distances and int64 rows -> int64 keys ordered by (distance, row)."""
    bits = dist.contiguous().view(torch.int32).to(torch.int64)  # monotonic in the value for dist >= +0
    return (bits << 32) | rows


def _split_keys(keys64: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of :func:`_order_keys`: (distances float32, rows int64)."""
    dist = (keys64 >> 32).to(torch.int32).view(torch.float32)
    return dist, keys64 & 0xFFFFFFFF


def _exact_dist(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Direct float32 |q - k| (no GEMM): q (b, D) x k (C, D) -> (b, C), or q (b, 1, D) x k (b, C, D) -> (b, 1, C)."""
    return torch.cdist(q, k, compute_mode="donot_use_mm_for_euclid_dist")


def _exact_topk(keys: torch.Tensor, q: torch.Tensor, k: int, chunk_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The fallback: exact k smallest by (direct distance, row) over all keys, chunked. q (r, D)."""
    best: torch.Tensor | None = None  # (r, <=k) int64 order keys
    for s in range(0, keys.shape[0], chunk_size):
        kc = keys[s : s + chunk_size].to(q.device, torch.float32)  # (C, D)
        rows = torch.arange(s, s + kc.shape[0], device=q.device)  # (C,)
        ok = _order_keys(_exact_dist(q, kc), rows)  # (r, C)
        if best is not None:
            ok = torch.cat([best, ok], dim=1)  # (r, k + C)
        best = torch.topk(ok, min(k, ok.shape[1]), dim=1, largest=False, sorted=True).values  # unique keys: no ties
    return _split_keys(best)


def _torch_candidates(keys: torch.Tensor, qb: torch.Tensor, kk: int, chunk_size: int
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(GEMM squared distances (b, kk) ascending, rows (b, kk), max key norm^2 (scalar)) by cdist + topk."""
    best_v = best_i = None
    kmax = torch.zeros((), device=qb.device)
    for s in range(0, keys.shape[0], chunk_size):
        kc = keys[s : s + chunk_size].to(qb.device, torch.float32, non_blocking=True)  # (C, D)
        kmax = torch.maximum(kmax, kc.square().sum(dim=1).max())
        d = torch.cdist(qb, kc, compute_mode="use_mm_for_euclid_dist")  # (b, C): one GEMM
        v, i = torch.topk(d, min(kk, kc.shape[0]), dim=1, largest=False)  # (b, <=kk)
        i = i + s
        if best_v is not None:  # merge with the running candidates: (b, <=2kk) -> (b, <=kk)
            v, i = torch.cat([best_v, v], dim=1), torch.cat([best_i, i], dim=1)
            v, o = torch.topk(v, min(kk, v.shape[1]), dim=1, largest=False)
            i = i.gather(1, o)
        best_v, best_i = v, i  # ascending (topk sorts by default)
    return best_v.square(), best_i, kmax


def _faiss_index(keys: torch.Tensor, cache: dict | None) -> Any:
    import faiss

    tag = (keys.data_ptr(), tuple(keys.shape), keys._version)
    if cache is not None and cache.get("tag") == tag:
        return cache["index"]
    index = faiss.IndexFlatL2(keys.shape[1])
    index.add(keys.detach().to("cpu", torch.float32).contiguous().numpy())
    if cache is not None:
        cache.update(tag=tag, index=index)
    return index


def _faiss_candidates(keys: torch.Tensor, qb: torch.Tensor, kk: int, cache: dict | None
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    index = _faiss_index(keys, cache)
    if cache is not None and "kmax" in cache and cache.get("tag_kmax") == cache["tag"]:
        kmax = cache["kmax"]
    else:
        kmax = float(keys.to(torch.float32).square().sum(dim=1).max())
        if cache is not None:
            cache.update(kmax=kmax, tag_kmax=cache["tag"])
    d2, i = index.search(qb.detach().cpu().contiguous().numpy(), kk)  # squared L2, ascending
    dev = qb.device
    return torch.from_numpy(d2).to(dev), torch.from_numpy(i).to(dev, torch.int64), torch.tensor(kmax, device=dev)


@torch.no_grad()
def knn(
    keys: torch.Tensor,
    q: torch.Tensor,
    k: int = 1,
    *,
    chunk_size: int = 32768,
    query_batch: int = 1024,
    rerank_margin: int = 8,
    backend: str = "torch",
    cache: dict | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact Euclidean k-NN of ``q`` (B, D) among ``keys`` (N, D): ``(dist (B, k), idx (B, k))``.

    Runs on ``q``'s device (key chunks are moved there). See the module docstring for the contract
    and the three steps; ``cache`` (a dict owned by the caller) keeps a faiss index between calls.
    Arguments are checked by :func:`physdiff.retrieval.index.query`, the public entry.
    """
    N, D = keys.shape
    if q.shape[0] == 0:
        return torch.empty(0, k, device=q.device), torch.empty(0, k, dtype=torch.long, device=q.device)
    kk = min(N, k + max(0, rerank_margin))  # candidates per query (margin 0: the certificate never holds)
    out_d, out_i = [], []
    with _full_fp32_matmul():
        for qs in range(0, q.shape[0], query_batch):
            qb = q[qs : qs + query_batch].to(torch.float32)  # (b, D)
            if backend == "faiss":
                g2, cand, kmax = _faiss_candidates(keys, qb, kk, cache)  # (b, kk) squared, rows
            else:
                g2, cand, kmax = _torch_candidates(keys, qb, kk, chunk_size)
            ck = keys[cand.reshape(-1).to(keys.device)].to(qb.device, torch.float32).view(*cand.shape, D)  # (b, kk, D)
            exact = _exact_dist(qb.unsqueeze(1), ck).squeeze(1)  # (b, kk)
            order = torch.sort(_order_keys(exact, cand), dim=1).values[:, :k]  # (b, k) by (distance, row)
            d, i = _split_keys(order)  # (b, k)
            if kk < N:
                # Certificate (module docstring): left-out keys have true d^2 >= T - delta > (k-th exact)^2.
                delta = _SAFETY * (D + 2) * _U * (qb.square().sum(dim=1) + kmax)  # (b,)
                unsure = (g2[:, -1] - delta <= d[:, -1].square()).nonzero().squeeze(1)  # (r,)
                if unsure.numel():
                    d[unsure], i[unsure] = _exact_topk(keys, qb[unsure], k, chunk_size)
            out_d.append(d)
            out_i.append(i)
    return torch.cat(out_d), torch.cat(out_i)
