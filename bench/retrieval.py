"""Retrieval index speed and memory: Euclidean k-NN queries/s for 1e5 - 1e6 keys, chunked search
against a one-shot torch.cdist reference (where that fits).

    python bench/retrieval.py                       # CPU, 1e5 and 1e6 keys of 256-d
    python bench/retrieval.py --device cuda --sizes 100000 1000000 4000000
    python bench/retrieval.py --sizes 20000 --queries 256   # quick check

Peak memory is the process's peak RSS above what it held after building the keys (CPU), or the
CUDA allocator's peak above the index (GPU): chunking keeps it ~ query_batch x chunk_size x 4 bytes
x a few temporaries, independent of the number of keys.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import physdiff  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads OpenMP)
import torch

from physdiff.retrieval import query


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _timed(fn, device: str) -> tuple[float, object]:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--dim", type=int, default=256, help="key dimension (visual latent)")
    ap.add_argument("--queries", type=int, default=1024)
    ap.add_argument("--k", type=int, default=1)
    ap.add_argument("--chunk-size", type=int, default=32768)
    ap.add_argument("--query-batch", type=int, default=1024)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cdist-max", type=int, default=200_000, help="largest N for the one-shot cdist reference")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--no-header", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if len(args.sizes) > 1 and not args.child and not args.device.startswith("cuda"):
        # One fresh process per size: peak RSS is per process, so sizes must not share one.
        import subprocess

        rest = [a for a in sys.argv[1:]]
        if "--sizes" in rest:
            j = rest.index("--sizes")
            while j + 1 < len(rest) and rest[j + 1].isdigit():
                rest.pop(j + 1)
            rest.pop(j)
        for i, n in enumerate(args.sizes):
            cmd = [sys.executable, __file__, *rest, "--sizes", str(n), "--child"] + (["--no-header"] if i else [])
            subprocess.run(cmd, check=True)
        return 0

    dev = args.device
    if not args.no_header:
        print(f"device {dev}, dim {args.dim}, {args.queries} queries, k {args.k}, chunk {args.chunk_size}, "
              f"query batch {args.query_batch}, torch threads {torch.get_num_threads()}")
        print(f"{'keys':>9} | {'chunked q/s':>11} | {'extra MB':>8} | {'cdist q/s':>9} | {'cdist extra MB':>14} | same idx")
        print("-" * 76, flush=True)
    g = torch.Generator().manual_seed(0)
    for n in args.sizes:
        keys = torch.randn(n, args.dim, generator=g).to(dev)  # (N, Dk)
        q = torch.randn(args.queries, args.dim, generator=g).to(dev)  # (B, Dk)
        query(keys, q[:8], k=args.k, chunk_size=args.chunk_size)  # warm-up
        if dev.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        else:
            base = _rss_mb()
        sec, (d, i) = _timed(lambda: query(keys, q, k=args.k, chunk_size=args.chunk_size, query_batch=args.query_batch), dev)
        extra = (torch.cuda.max_memory_allocated() - base) / 2**20 if dev.startswith("cuda") else _rss_mb() - base
        ref_qps = ref_mb = "-"
        same = "-"
        if n <= args.cdist_max:
            base2 = torch.cuda.memory_allocated() if dev.startswith("cuda") else _rss_mb()
            if dev.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            sec2, ri = _timed(lambda: torch.cdist(q, keys).topk(args.k, dim=1, largest=False).indices, dev)
            mb2 = (torch.cuda.max_memory_allocated() - base2) / 2**20 if dev.startswith("cuda") else _rss_mb() - base2
            ref_qps, ref_mb = f"{args.queries / sec2:.0f}", f"{mb2:.0f}"
            same = f"{(ri[:, 0] == i[:, 0]).float().mean().item() * 100:.1f}%"
        print(f"{n:>9} | {args.queries / sec:>11.0f} | {extra:>8.0f} | {ref_qps:>9} | {ref_mb:>14} | {same}", flush=True)
        del keys, q
    return 0


if __name__ == "__main__":
    sys.exit(main())
