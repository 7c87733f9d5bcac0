"""Video stage on the CPU: does the TSM classifier learn the generated world's materials, and how fast?

    python bench/video.py                           # tiny preset, a 40-video tiny world, 20 epochs (~10 min, 2 cores)
    python bench/video.py --videos 12 --epochs 10   # the plain tiny world (only ~17 held-out clips: noisy)
    python bench/video.py --data-root /tmp/vb       # elsewhere than ./data (world + shards are reused)

Steps: generate the world and its shards (skipped when present), then measure separately
(1) the frame loader alone (JPEG decoding of 22 frames per clip in ``loader.num_workers`` workers),
(2) one training step alone on an in-memory batch (augmentation + forward + backward + AdamW), and
(3) the real training run through the engine (``train_stage(cfg, "video")``), whose end-to-end clips/s
should match (2) when decoding is not the bottleneck. Prints held-out accuracy and balanced accuracy per
epoch against their chance levels (the majority class's share; 1 / classes present).

The world is the ``tiny`` preset's except for ``world.videos`` (more videos give a held-out split with
more clips and materials; the split is by video, as in the dataset).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import physdiff  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads OpenMP)
import torch

REPO = Path(__file__).resolve().parents[1]


def ensure_data(cfg) -> tuple[Path, float]:
    from physdiff.data.build import build_shards
    from physdiff.identity import shards_dir, world_dir
    from physdiff.world import generate_world

    t0 = time.time()
    world, shards = world_dir(cfg), shards_dir(cfg)
    if not ((world / "train.txt").exists() and (world / "test.txt").exists()):
        generate_world(world, cfg.world, progress=False)
    if not (shards / "summary.json").exists():
        build_shards(world, shards, cfg, workers=1)
    return shards, time.time() - t0


def loader_rate(cfg, shards: Path, batches: int) -> float:
    """Clips/s of the training loader alone (frames decoded, nothing trained)."""
    from physdiff.data.reader import make_loader

    loader = make_loader(shards, "train", batch_size=cfg.loader.batch_size, mode="train", frames=True, seed=cfg.seed,
                         num_workers=cfg.loader.num_workers, batches_per_epoch=batches,
                         shuffle_buffer=cfg.loader.shuffle_buffer)
    n, t0 = 0, None
    for i, batch in enumerate(loader):
        if i == 0:  # the first batch includes worker start-up: time from there on
            t0 = time.time()
            continue
        n += batch["frames"].shape[0]
    return n / max(time.time() - t0, 1e-9) if n else float("nan")


def step_rate(cfg, shards: Path, steps: int) -> tuple[float, float]:
    """(clips/s, augmentation share) of one training step on an in-memory batch (no loading)."""
    from physdiff.data.augment import augment_clips
    from physdiff.data.reader import frames_to_float, make_loader
    from physdiff.stages.video import VideoRecipe

    rec = VideoRecipe()
    rec.setup(cfg, 0, 1)
    batch = next(iter(make_loader(shards, "train", batch_size=cfg.loader.batch_size, mode="train", frames=True,
                                  batches_per_epoch=1)))
    torch.manual_seed(0)
    model = rec.build_model(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    times = []
    for i in range(steps + 2):
        t0 = time.time()
        loss, _ = rec.loss(model, batch, cfg)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= 2:  # warm-up
            times.append(time.time() - t0)
    x = frames_to_float(batch["frames"])
    t0 = time.time()
    for _ in range(steps):
        augment_clips(x, cfg.video, cfg.video.frame_size)
    aug = (time.time() - t0) / steps
    step = sum(times) / len(times)
    return batch["frames"].shape[0] / step, aug / step


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=40)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--data-root", default="", help="data folder (default: $PHYSDIFF_DATA or ./data)")
    ap.add_argument("--keep", action="store_true", help="reuse a finished run instead of retraining")
    ap.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="extra config overrides")
    args = ap.parse_args(argv)

    from physdiff.config import resolve_config
    from physdiff.data.reader import load_manifest
    from physdiff.stages import stage_run_dir
    from physdiff.stages import train_stage

    over = [f"world.videos={args.videos}", f"train.epochs={args.epochs}", "tracking.enabled=false",
            "train.progress=false", *args.overrides]
    if args.data_root:
        over.append(f"paths.data_root={args.data_root}")
    cfg = resolve_config("tiny", over)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    shards, t_data = ensure_data(cfg)
    n_train = load_manifest(shards, "train")["num_samples"]
    n_test = load_manifest(shards, "test")["num_samples"]
    print(f"data: {shards} ({n_train} train / {n_test} test clips; {t_data:.0f} s to generate/check)", flush=True)

    load_cps = loader_rate(cfg, shards, batches=8)
    step_cps, aug_share = step_rate(cfg, shards, steps=5)
    print(f"loader alone: {load_cps:.1f} clips/s ({cfg.loader.num_workers} workers); "
          f"train step alone: {step_cps:.1f} clips/s (augmentation {100 * aug_share:.0f}% of it)", flush=True)

    run_dir = stage_run_dir(cfg, "video")
    if run_dir.exists() and not args.keep:
        shutil.rmtree(run_dir)  # this benchmark's own run folder: retrain so the timing is real
    t0 = time.time()
    res = train_stage(cfg, "video")
    wall = time.time() - t0
    rows = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines() if l.strip()]
    evals = [r for r in rows if "val/acc" in r]
    cps = [r["train/clips_per_s"] for r in rows if "train/clips_per_s" in r]

    print(f"\nvideo stage, tiny preset ({cfg.video.backbone} {list(cfg.video.small_widths)}, "
          f"{cfg.video.frame_size} px, batch {cfg.loader.batch_size}), {res.step} steps in {wall:.0f} s")
    print(f"{'epoch':>5} {'val acc':>8} {'bal acc':>8} {'chance':>7} {'chance bal':>10} {'val loss':>9}")
    for r in evals:
        print(f"{r['epoch']:>5} {r['val/acc']:>8.3f} {r['val/balanced_acc']:>8.3f} {r['val/chance_acc']:>7.3f} "
              f"{r['val/chance_balanced_acc']:>10.3f} {r['val/loss']:>9.3f}")
    if cps:
        tail = cps[len(cps) // 2 :]  # steady state
        print(f"training throughput (engine, end to end): {sum(tail) / len(tail):.1f} clips/s; "
              f"loader alone {load_cps:.1f}; step alone {step_cps:.1f}")
    man = json.loads((run_dir / "export" / "manifest.json").read_text())
    for split, v in man["splits"].items():
        print(f"export {split}: {v['count']} clips, acc {v.get('acc', float('nan')):.3f} "
              f"(chance {v.get('chance_acc', float('nan')):.3f})")
    last = evals[-1] if evals else {}
    if last:
        print(f"\nheld-out: accuracy {last['val/acc']:.3f} vs chance {last['val/chance_acc']:.3f}; "
              f"balanced {last['val/balanced_acc']:.3f} vs {last['val/chance_balanced_acc']:.3f} "
              f"({int(last['val/clips'])} clips)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
