"""Benchmark: how fast the synthetic world is generated on this machine.

    python bench/synth.py                       # 20 videos x 16 hits at 224 px, workers = 2 (the target: <= 60 s)
    python bench/synth.py --videos 4 --size 64  # quick

Prints one table row per configuration: wall seconds, videos/min, content minutes, MB written,
MB per wall minute and MB per minute of content, and CPU seconds (all processes).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from physdiff.world import WorldConfig, generate_world


def _cpu_seconds() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=20)
    ap.add_argument("--hits-per-video", type=int, default=16)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--workers", type=int, nargs="+", default=[2])
    args = ap.parse_args()
    print(f"cores: {os.cpu_count()}  world: {args.videos} videos x {args.hits_per_video} hits at {args.size} px")
    print("| workers | wall s | videos/min | content min | MB | MB/min (wall) | MB/min of content | CPU s |")
    print("|---|---|---|---|---|---|---|---|")
    for workers in args.workers:
        world = WorldConfig(videos=args.videos, hits_per_video=args.hits_per_video, size=args.size, workers=workers)
        with tempfile.TemporaryDirectory() as tmp:
            c0, t0 = _cpu_seconds(), time.perf_counter()
            s = generate_world(Path(tmp) / "w", world, 0, progress=False)
            wall, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
        mb, content_min = s["bytes"] / 1e6, s["seconds"] / 60
        print(f"| {workers} | {wall:.1f} | {s['videos'] / wall * 60:.1f} | {content_min:.2f} | {mb:.1f} "
              f"| {mb / wall * 60:.1f} | {mb / content_min:.1f} | {cpu:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
