"""Retrieval speed and memory: exact Euclidean k-NN queries/s at 10k and 1M keys (issue [14/14]).

    python bench/retrieval.py                                   # CPU, 10k and 1M keys of 256-d, torch (+ faiss if installed)
    python bench/retrieval.py --baseline-rev 7bfd9eb            # + the hand-written search of that commit, same run
    python bench/retrieval.py --sizes 10000 --dim 2048          # paper-sized nu (ResNet-50 pooled) at the paper's 10k clips
    python bench/retrieval.py --device cuda --sizes 10000 1000000 4000000

Methods, each in a fresh child process (peak RSS is per process), on the same seeded keys and queries:

- ``torch``: ``physdiff.retrieval.query`` (cdist + topk in chunks, exact re-rank, certificate);
- ``faiss``: the same with ``backend="faiss"`` (candidates from faiss's ``IndexFlatL2``; the index is
  built once and kept on the ``RetrievalIndex``: its build time is reported apart);
- ``old``: ``query`` of ``--baseline-rev`` (git show of physdiff/retrieval/index.py at that commit);
- ``cdist``: one-shot ``torch.cdist(q, keys).topk`` over the full (B, N) matrix (not exact near
  ties; memory O(B x N)), only up to ``--cdist-max`` keys.

Columns: seconds for all queries (after one warm-up query of 8; the median of ``--repeats`` runs), queries/s, peak memory above what the
process held once keys and queries existed (CPU: peak RSS; CUDA: the allocator's peak), and the share
of top-1 rows equal to ``torch``'s. On a shared 2-core machine, compare ratios within one run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import physdiff  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads OpenMP)
import torch

REPO = Path(__file__).resolve().parents[1]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _load_baseline(rev: str):
    """``physdiff/retrieval/index.py`` as it was at ``rev``, imported as a module of its own."""
    src = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:physdiff/retrieval/index.py"],
                         check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "baseline_index.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("baseline_index", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["baseline_index"] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def child(args: argparse.Namespace) -> None:
    """One (size, method) measurement; prints one JSON line and saves the top-1 rows beside --out."""
    from physdiff.retrieval import RetrievalIndex, query

    dev, n, method = args.device, args.sizes[0], args.method
    g = torch.Generator().manual_seed(0)
    keys = torch.randn(n, args.dim, generator=g).to(dev)  # (N, D)
    q = torch.randn(args.queries, args.dim, generator=g).to(dev)  # (B, D)
    kw = dict(k=args.k, chunk_size=args.chunk_size, query_batch=args.query_batch)
    build_s = 0.0
    if method == "torch":
        fn = lambda qq: query(keys, qq, **kw)  # noqa: E731
    elif method == "faiss":
        index = RetrievalIndex(keys, keys[:, :1], [str(i) for i in range(n)])
        t = time.perf_counter()
        query(index, q[:1], k=1, backend="faiss")  # builds and caches the faiss index
        build_s = time.perf_counter() - t
        fn = lambda qq: query(index, qq, backend="faiss", **kw)  # noqa: E731
    elif method == "old":
        old = _load_baseline(args.baseline_rev)
        fn = lambda qq: old.query(keys, qq, **kw)  # noqa: E731
    else:  # cdist one shot
        fn = lambda qq: torch.cdist(qq, keys).topk(args.k, dim=1, largest=False)  # noqa: E731
    fn(q[:8])  # warm-up (allocator, threads, faiss index)
    _sync(dev)
    if dev.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss_mb()
    secs = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        _d, idx = fn(q)
        _sync(dev)
        secs.append(time.perf_counter() - t)
    extra = (torch.cuda.max_memory_allocated() - base) / 2**20 if dev.startswith("cuda") else _rss_mb() - base
    torch.save(idx[:, 0].cpu(), args.out)
    print(json.dumps({"n": n, "method": method, "secs": secs, "mb": extra, "build_s": build_s,
                      "threads": torch.get_num_threads()}), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 1_000_000])
    ap.add_argument("--dim", type=int, default=256, help="key dimension (nu; 2048 for ResNet-50 at the paper preset)")
    ap.add_argument("--queries", type=int, default=1024)
    ap.add_argument("--k", type=int, default=1)
    ap.add_argument("--chunk-size", type=int, default=32768)
    ap.add_argument("--query-batch", type=int, default=1024)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=1, help="timed runs per method (median; min-max shown)")
    ap.add_argument("--methods", nargs="+", default=None, help="subset of: torch faiss old cdist")
    ap.add_argument("--baseline-rev", default=None, help="git revision whose hand-written search to compare ('old')")
    ap.add_argument("--cdist-max", type=int, default=200_000, help="largest N for the one-shot cdist reference")
    ap.add_argument("--method", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.method:
        child(args)
        return 0

    from physdiff.retrieval.search import faiss_available

    methods = args.methods or ["torch", *(["faiss"] if faiss_available() and args.device == "cpu" else []),
                               *(["old"] if args.baseline_rev else []), "cdist"]
    print(f"device {args.device}, {args.queries} queries, k {args.k}, chunk {args.chunk_size}, query batch "
          f"{args.query_batch}, baseline {args.baseline_rev or '-'}")
    head = f"{'keys':>9} | {'dims':>4} | {'queries':>7} | {'method':>6} | {'seconds':>8} | {'queries/s':>9} | {'peak MB':>7} | {'top-1 = torch':>13} | note"
    print(head + "\n" + "-" * len(head), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            top1: dict[str, torch.Tensor] = {}
            for m in methods:
                if m == "cdist" and n > args.cdist_max:
                    continue
                out = Path(tmp) / f"{n}-{m}.pt"
                cmd = [sys.executable, __file__, "--method", m, "--out", str(out), "--sizes", str(n),
                       "--dim", str(args.dim), "--queries", str(args.queries), "--k", str(args.k),
                       "--chunk-size", str(args.chunk_size), "--query-batch", str(args.query_batch),
                       "--device", args.device, "--repeats", str(args.repeats), *(["--baseline-rev", args.baseline_rev] if args.baseline_rev else [])]
                r = subprocess.run(cmd, capture_output=True, text=True)
                if r.returncode != 0:
                    print(f"{n:>9} | {args.dim:>4} | {args.queries:>7} | {m:>6} | failed: {r.stderr.strip().splitlines()[-1:]}")
                    continue
                res = json.loads(r.stdout.strip().splitlines()[-1])
                top1[m] = torch.load(out, weights_only=True)  # a tensor the child wrote
                same = f"{(top1[m] == top1['torch']).float().mean().item() * 100:.1f}%" if "torch" in top1 else "-"
                secs = sorted(res["secs"])
                sec = secs[len(secs) // 2]
                note = f"{min(secs):.2f}-{max(secs):.2f} s over {len(secs)} runs; " if len(secs) > 1 else ""
                note += f"index build {res['build_s']:.1f} s" if m == "faiss" else ""
                print(f"{n:>9} | {args.dim:>4} | {args.queries:>7} | {m:>6} | {sec:>8.2f} | "
                      f"{args.queries / sec:>9.0f} | {res['mb']:>7.0f} | {same:>13} | {note}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
