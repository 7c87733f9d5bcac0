"""Shard build and read throughput on a generated world (issue [3/8]).

    python bench/shards.py                       # paper preset: 44.1 kHz, 224 px frames, 2 build workers
    python bench/shards.py --videos 4 --size 64  # quicker
    python bench/shards.py --source DIR          # an existing Greatest Hits layout folder instead

Prints: build clips/s (targets: >= 50 clips/s with 224 px frames on 2 cores), bytes per clip by
member, read clips/s audio + physics only (target >= 1,000) and with the 22 decoded frames.
World generation time is not part of the build figure.
"""

from __future__ import annotations

import argparse
import tarfile
import tempfile
import time
from collections import Counter
from pathlib import Path

from physdiff.config import resolve_config
from physdiff.data.build import build_shards
from physdiff.data.reader import make_loader


def read_rate(root: Path, frames: bool, workers: int, batch: int, clips: int) -> tuple[float, int]:
    """Clips/s of one long train-mode stream (resampled shards), timed from the first batch on, so
    loader start-up (worker fork, first shard open) is not counted."""
    n_batches = max(2, clips // batch)
    ld = make_loader(root, "train", batch_size=batch, mode="train", frames=frames, num_workers=workers,
                     batches_per_epoch=n_batches, shuffle_buffer=64)
    it = iter(ld)
    next(it)
    n, t0 = 0, time.perf_counter()
    for b in it:
        n += len(b["key"])
    return n / (time.perf_counter() - t0), n


def member_bytes(root: Path) -> Counter:
    c: Counter = Counter()
    for p in sorted(root.glob("train/*.tar"))[:4]:
        with tarfile.open(p) as tf:
            for m in tf.getmembers():
                ext = m.name.split(".", 1)[1]
                c["frames.mjpeg" if ext == "frames.mjpeg" else ext] += m.size
                c["clips"] += ext == "json"
    return c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="paper")
    ap.add_argument("--source", type=Path, help="existing Greatest Hits layout folder (default: generate a world)")
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--hits", type=int, default=16, help="hits per video")
    ap.add_argument("--size", type=int, default=224, help="frame size (world and shards)")
    ap.add_argument("--workers", type=int, default=2, help="build processes")
    ap.add_argument("--read-workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--subset", default="all")
    args = ap.parse_args()

    cfg = resolve_config(args.preset, [f"world.videos={args.videos}", f"world.hits_per_video={args.hits}",
                                       f"world.size={args.size}", f"shards.frame_size={args.size}",
                                       f"shards.subset={args.subset}"])
    with tempfile.TemporaryDirectory() as tmp:
        src = args.source
        if src is None:
            from physdiff.world import generate_world

            src = Path(tmp) / "world"
            t0 = time.perf_counter()
            generate_world(src, cfg.world, seed=0, progress=False)
            print(f"generated world: {args.videos} videos x {args.hits} hits at {args.size} px in {time.perf_counter() - t0:.1f} s")
        out = Path(tmp) / "shards"
        t0 = time.perf_counter()
        s = build_shards(src, out, cfg, workers=args.workers)
        dt = time.perf_counter() - t0
        total_bytes = sum(d["bytes"] for d in s["splits"].values())
        mb = member_bytes(out)
        rows = [
            ("build", f"{s['written'] / dt:8.1f} clips/s", f"{s['written']} clips, {args.workers} procs, {dt:.1f} s, frames {args.size} px"),
            ("bytes/clip", f"{total_bytes / max(1, s['written']) / 1e3:8.1f} kB", "tar total / clips"),
        ]
        for k in ("flac", "frames.mjpeg", "modes.npy", "json"):
            rows.append((f"  {k}", f"{mb[k] / max(1, mb['clips']) / 1e3:8.1f} kB", "payload per clip"))
        for frames in (False, True):
            for w in sorted({0, args.read_workers}):
                rate, n = read_rate(out, frames, w, args.batch, 400 if frames else 4000)
                rows.append((f"read {'audio+modes+frames' if frames else 'audio+modes'}", f"{rate:8.0f} clips/s",
                             f"{w} loader workers, batch {args.batch}, {n} clips"))
        print(f"\nshards bench (preset {args.preset}, {args.subset} subset, sample rate {cfg.audio.sample_rate})")
        for name, val, note in rows:
            print(f"  {name:26s} {val:>16s}   {note}")


if __name__ == "__main__":
    main()
