"""Shard build and read throughput on a generated world (issues [3/8], [10/14], [14/14]).

    python bench/shards.py                       # paper preset: 44.1 kHz, 224 px frames, 2 build workers
    python bench/shards.py --videos 4 --size 64  # quicker
    python bench/shards.py --source DIR          # an existing Greatest Hits layout folder instead
    python bench/shards.py --shards DIR          # read-only: existing shards (skips world and build)

Prints: build clips/s (target >= 50 clips/s with 224 px frames on 2 cores), bytes per clip by member,
then the read table: audio + physics only (target >= 1,000 clips/s) and with the 22 decoded frames
(target >= 400 clips/s on 2 cores), each with the shard hash check off and on (``verify="off"`` /
``"shard"``), for 0 and ``--read-workers`` loader workers, and the CPU side of GPU decoding
(``frames="jpeg"``: the members handed over undecoded, for nvjpeg in the main process). Two rates per row:

- ``clips/s``: wall clock of one long train-mode stream, from the first batch on;
- ``clips/CPU-s``: clips per CPU-second of every process of the loader (main + workers, from
  getrusage), start-up included. On a 2-core machine shared with other jobs the wall figure moves with
  the load; the CPU figure much less, and 2 x it is the 2-core ceiling.

Then the per-clip profile (``--profile``, on by default): CPU ms per clip of each step of a read with
frames, in one process: tar parsing with and without the sha256, FLAC, npy + JSON, and the JPEG decode
by PIL (the reader before issue [14/14]: PIL one frame at a time, then a CHW copy per clip and a stack
per batch) against ``torchvision.io.decode_jpeg`` into the batch buffer (the reader now). Compare
ratios within one run: absolute times on a shared machine are noisy.
World generation time is not part of the build figure.
"""

from __future__ import annotations

import argparse
import io
import resource
import statistics
import tarfile
import tempfile
import time
from collections import Counter
from pathlib import Path

import physdiff  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads OpenMP)
import numpy as np
import torch

from physdiff.config import resolve_config
from physdiff.data import sample as S
from physdiff.data.build import build_shards
from physdiff.data.reader import _iter_tar, load_manifest, make_loader


def _cpu_seconds() -> float:
    """CPU seconds of this process and of its reaped children (the loader workers, once joined)."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def read_rate(root: Path, frames: bool | str, workers: int, batch: int, clips: int, verify: str) -> tuple[float, float, int]:
    """(wall clips/s from the first batch on, clips per CPU-second of all loader processes, clips) of one
    long train-mode stream (resampled shards); loader start-up is out of the wall figure only."""
    n_batches = max(2, clips // batch)
    ld = make_loader(root, "train", batch_size=batch, mode="train", frames=frames, num_workers=workers,
                     batches_per_epoch=n_batches, shuffle_buffer=64, verify=verify)
    c0 = _cpu_seconds()
    it = iter(ld)
    first = len(next(it)["key"])
    n, t0 = 0, time.perf_counter()
    for b in it:
        n += len(b["key"])
    wall = time.perf_counter() - t0
    del it  # joins the workers, so their CPU time is in RUSAGE_CHILDREN
    return n / wall, (n + first) / (_cpu_seconds() - c0), n


def first_batch_seconds(root: Path, verify: str, frames: bool, batch: int) -> float:
    """Seconds to the first eval batch (0 workers): ``verify="shard"`` reads a whole shard first."""
    t0 = time.perf_counter()
    next(iter(make_loader(root, "train", batch_size=batch, mode="eval", frames=frames, verify=verify)))
    return time.perf_counter() - t0


def member_bytes(root: Path) -> Counter:
    c: Counter = Counter()
    for p in sorted(root.glob("train/*.tar"))[:4]:
        with tarfile.open(p) as tf:
            for m in tf.getmembers():
                ext = m.name.split(".", 1)[1]
                c["frames.mjpeg" if ext == "frames.mjpeg" else ext] += m.size
                c["clips"] += ext == "json"
    return c


# ----------------------------------------------------------------------------- per-clip profile


def _pil_frames(data: bytes, lengths: list[int]) -> np.ndarray:
    """The reader's decode before issue [14/14]: PIL, one frame at a time -> (F, 3, H, W) contiguous."""
    from PIL import Image

    out, pos = [], 0
    for n in lengths:
        with Image.open(io.BytesIO(data[pos : pos + n])) as img:
            out.append(np.asarray(img.convert("RGB")))  # (H, W, 3)
        pos += n
    return np.ascontiguousarray(np.stack(out).transpose(0, 3, 1, 2))  # (F, 3, H, W)


def _cpu_ms(fn, items: list, reps: int = 3) -> float:
    """Best of ``reps`` passes: CPU ms per item (process time of this process only)."""
    fn(items[:1])
    best = float("inf")
    for _ in range(reps):
        t = time.process_time()
        fn(items)
        best = min(best, (time.process_time() - t) / len(items))
    return best * 1e3


def profile(root: Path, batch: int) -> list[tuple[str, float]]:
    """CPU ms per clip of each step of a read with frames (one process, one intra-op thread)."""
    torch.set_num_threads(1)
    man = load_manifest(root, "train")
    shards = [(str(root / s["name"]), (s["sha256"], s["bytes"])) for s in man["shards"] if s["count"]][:3]
    clips = sum(s["count"] for s in man["shards"][:3])
    raws = [r for url, _ in shards for r in _iter_tar(url, True)][: 4 * batch]
    metas = [S.decode_meta(r[S.META_EXT]) for r in raws]
    members = [(r[S.FRAMES_EXT], m["frame_bytes"]) for r, m in zip(raws, metas)]
    batches = [members[i : i + batch] for i in range(0, len(members), batch)]

    def tar(digest: bool) -> float:
        t = time.process_time()
        for url, d in shards:
            for _ in _iter_tar(url, True, d if digest else None):
                pass
        return (time.process_time() - t) / clips * 1e3

    def old(bs):  # PIL per frame, CHW copy per clip, np.stack per batch
        for b in bs:
            torch.from_numpy(np.stack([_pil_frames(d, n) for d, n in b]))

    def new_batch(b: list) -> torch.Tensor:  # as the reader: torchvision per clip, into the batch buffer
        first = S.decoded_frames(*b[0])  # F x (H, W, 3)
        buf = S.shared_uint8((len(b), len(first), *first[0].shape))  # (B, F, H, W, 3)
        S.stack_frames(first, buf[0])
        for j, (d, n) in enumerate(b[1:], start=1):
            S.decode_clip_frames(d, n, out=buf[j])
        return S.frames_chw(buf)  # (B, F, 3, H, W) view

    def new(bs):
        for b in bs:
            new_batch(b)

    def planar(bs):  # what a contiguous (B, F, 3, H, W) would add: the reader does not make this copy
        for b in bs:
            new_batch(b).contiguous()

    def decode_only(ms):
        for d, n in ms:
            S._decode_jpegs(S.frame_jpegs(d, n))

    per_batch = len(members) / len(batches)
    rows = [
        ("tar parse, frames kept (no hash)", min(tar(False) for _ in range(3))),
        ("tar parse, frames kept + sha256", min(tar(True) for _ in range(3))),
        ("FLAC decode", _cpu_ms(lambda rs: [S.decode_audio(r[S.AUDIO_EXT]) for r in rs], raws)),
        ("npy + JSON decode", _cpu_ms(lambda rs: [(S.decode_npy(r[S.MODES_EXT]), S.decode_meta(r[S.META_EXT])) for r in rs], raws)),
        ("JPEG: PIL + CHW copy + stack (old)", _cpu_ms(old, batches) / per_batch),
        ("JPEG: torchvision into batch (new)", _cpu_ms(new, batches) / per_batch),
        ("  of which decode_jpeg alone", _cpu_ms(decode_only, members)),
        ("  new + a planar CHW copy (not made)", _cpu_ms(planar, batches) / per_batch),
    ]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="paper")
    ap.add_argument("--source", type=Path, help="existing Greatest Hits layout folder (default: generate a world)")
    ap.add_argument("--shards", type=Path, help="existing shard root: read benchmarks only")
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--hits", type=int, default=16, help="hits per video")
    ap.add_argument("--size", type=int, default=224, help="frame size (world and shards)")
    ap.add_argument("--workers", type=int, default=2, help="build processes")
    ap.add_argument("--read-workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--subset", default="all")
    ap.add_argument("--frame-clips", type=int, default=800, help="clips per read-with-frames measurement")
    ap.add_argument("--audio-clips", type=int, default=4000, help="clips per audio-only measurement")
    ap.add_argument("--repeats", type=int, default=1, help="measure each read row this many times (median, min-max)")
    ap.add_argument("--no-profile", action="store_true")
    args = ap.parse_args()

    cfg = resolve_config(args.preset, [f"world.videos={args.videos}", f"world.hits_per_video={args.hits}",
                                       f"world.size={args.size}", f"shards.frame_size={args.size}",
                                       f"shards.subset={args.subset}"])
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.shards is not None:
            out = args.shards
        else:
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
            rows += [
                ("build", f"{s['written'] / dt:8.1f} clips/s", f"{s['written']} clips, {args.workers} procs, {dt:.1f} s, frames {args.size} px"),
                ("bytes/clip", f"{total_bytes / max(1, s['written']) / 1e3:8.1f} kB", "tar total / clips"),
            ]
        mb = member_bytes(out)
        for k in ("flac", "frames.mjpeg", "modes.npy", "json"):
            rows.append((f"  {k}", f"{mb[k] / max(1, mb['clips']) / 1e3:8.1f} kB", "payload per clip"))
        label = {False: "read audio+modes", True: "read audio+modes+frames", "jpeg": "read +frames undecoded"}
        for frames in (False, True, "jpeg"):
            for w in sorted({0, args.read_workers}):
                for verify in ("off", "shard") if frames != "jpeg" else ("shard",):
                    got = [read_rate(out, frames, w, args.batch, args.audio_clips if frames is False else args.frame_clips,
                                     verify) for _ in range(args.repeats)]
                    wall = [g[0] for g in got]
                    cpu = statistics.median(g[1] for g in got)
                    spread = f" ({min(wall):.0f}-{max(wall):.0f})" if len(got) > 1 else ""
                    rows.append((label[frames], f"{statistics.median(wall):8.0f} clips/s",
                                 f"{cpu:5.0f} clips/CPU-s{spread}  {w} workers, verify={verify}, batch {args.batch}, {got[0][2]} clips"))
        for verify in ("stream", "shard"):
            rows.append((f"first batch, verify={verify}", f"{first_batch_seconds(out, verify, True, args.batch) * 1e3:8.0f} ms",
                         "eval, 0 workers, frames (shard mode reads its whole first shard first)"))
        print(f"\nshards bench (preset {args.preset}, {args.subset} subset, sample rate {cfg.audio.sample_rate}, "
              f"torch threads {torch.get_num_threads()})")
        for name, val, note in rows:
            print(f"  {name:26s} {val:>16s}   {note}")
        if not args.no_profile:
            print(f"\nper-clip CPU profile of a read with frames (1 process, 1 thread, batch {args.batch})")
            for name, ms in profile(out, args.batch):
                print(f"  {name:38s} {ms:7.2f} ms/clip")


if __name__ == "__main__":
    main()
