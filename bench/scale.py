"""The paper's scale on this machine: a ~10k-clip world (hit + static, 10 materials) generated and sharded, timed.

    python bench/scale.py                                  # ~10k paper-subset clips at 224 px (tens of minutes on 2 cores)
    python bench/scale.py --clips 400 --data /tmp/scale    # the same steps, quickly
    python bench/scale.py --data DIR --json DIR/scale.json # rerun: a finished world / shard build is reused (timed as 0)

Steps, each the project's own command as a subprocess under ``nice -n 10`` (wall seconds and the CPU seconds
of the command and its children, from getrusage):

1. ``physdiff synth``: ``ceil(clips / (hits_per_video x 0.8))`` videos (0.8: the share of the world's events
   in the paper subset; the count written is what it is, and is reported);
2. ``physdiff shards --subset paper`` with the shard rule of docs/scaling.md (``--samples-per-shard``,
   ``--shards-per-task``);
3. the read throughput of the result (``bench/shards.py``'s ``read_rate``: audio + modes, and with the 22
   decoded frames, 0 and ``--read-workers`` loader workers);
4. the shard rule checked on the built counts: for 1 and 4 nodes of 8 GPUs and 4 / 8 loader workers, the
   shards per reader and the share of the training clips an epoch uses with ``loader.train_shards=split``
   (``physdiff.data.reader.plan_split``), for the built shard size and the sizes the same world would give
   at other ``shards.samples_per_shard`` (tasks planned by ``physdiff.data.build.plan_build``, counts from
   the world's annotations: exact up to bad clips the build skips).

Per-clip costs (``s/clip`` = wall / written clips, ``CPU-s/clip``) are what docs/scaling.md scales from. The
world's scene code changes under other branches: rerun this after their merge.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PAPER_SHARE = 0.8  # hit x static x labelled in the world's defaults: 0.9 x 0.92 x 0.97 (physdiff/world/config.py)


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(cmd: list[str], log: Path) -> dict[str, float]:
    """Run ``nice -n 10 cmd`` with its output in ``log``; wall and CPU seconds (the command and its children)."""
    c0, t0 = _children_cpu(), time.perf_counter()
    with open(log, "w") as f:
        p = subprocess.run(["nice", "-n", "10", *cmd], cwd=REPO, stdout=f, stderr=subprocess.STDOUT,
                           env=dict(os.environ, PYTHONPATH=str(REPO)))
    out = {"wall_s": time.perf_counter() - t0, "cpu_s": _children_cpu() - c0}
    if p.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd[:4])} ... failed (exit {p.returncode}); see {log}:\n"
                         + log.read_text()[-2000:])
    return out


def paper_events(world: Path) -> dict[str, int]:
    """Selected (paper subset) events per video, from the world's annotations (what the build selects)."""
    from physdiff.data import layout

    out = {}
    for vid in layout.list_video_ids(world):
        events, _bad = layout.parse_times(layout.Video(vid, world).times, vid)
        out[vid] = sum(layout.subset_reason(e, "paper") is None for e in events)
    return out


def simulated_counts(world: Path, selected: dict[str, int], sps: int, spt: int) -> list[int]:
    """Training-split shard sizes the builder would write at ``samples_per_shard=sps`` (its own task plan)."""
    from physdiff.config import resolve_config
    from physdiff.data.build import plan_build

    cfg = resolve_config("paper", [f"shards.samples_per_shard={sps}", f"shards.shards_per_task={spt}", "shards.subset=paper"])
    counts = []
    for task in plan_build(world, cfg).tasks:
        if task.split != "train":
            continue
        n = sum(selected[v] for v in task.video_ids)
        counts += [sps] * (n // sps) + ([n % sps] if n % sps else [])
    return counts


def rule_rows(counts: list[int], batch: int, label: str) -> list[dict[str, Any]]:
    """The split plan for 1 and 4 nodes x 8 GPUs x 4 / 8 workers on these shard sizes."""
    from physdiff.data.reader import plan_split
    from physdiff.errors import DataError

    rows = []
    n = sum(counts)
    for nodes in (1, 4):
        for workers in (4, 8):
            ranks = nodes * 8
            readers = ranks * workers
            row = {"shards": label, "nodes": nodes, "gpus": ranks, "workers": workers, "num_shards": len(counts),
                   "shards_per_reader": len(counts) / readers, "train_clips": n,
                   "resample_batches": max(1, n // (batch * ranks))}
            try:
                plan = plan_split(counts, batch, ranks, workers, seed=0)
                row.update(split_batches=plan.batches, used=plan.clips_per_epoch / n)
            except DataError as e:
                row.update(split_batches=0, used=0.0, error=str(e))
            rows.append(row)
    return rows


def checkpoint_costs(base: Path, preset: str = "paper") -> list[dict[str, Any]]:
    """Size and write time of one engine checkpoint and one export of every training stage at ``preset``.

    The state is what ``physdiff.training.trainer`` saves (model, AdamW after a step, so both moment buffers
    exist, scheduler, RNG of one rank, meta.json), written by ``physdiff.training.checkpoint`` (torch.save,
    fsync, rename) into ``base``; the export is ``export/model.safetensors`` (the weights alone).
    """
    import shutil

    import torch
    from safetensors.torch import save_file

    from physdiff.config import resolve_config
    from physdiff.stages import get_recipe
    from physdiff.training import checkpoint as ck

    cfg = resolve_config(preset)
    rows = []
    for stage in ("prior", "video", "classifier", "diffusion"):
        rec = get_recipe(stage)
        if stage == "diffusion":
            from physdiff.models.video import video_feature_dim

            rec.nu_dim = video_feature_dim(cfg.video)
        model = rec.build_model(cfg)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        for q in model.parameters():
            q.grad = torch.zeros_like(q)
        opt.step()  # the moment buffers exist, as in any checkpoint after step 1
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, 0.95)
        state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                 "ema": {}, "scaler": {}}
        folder = base / "checkpoint-bench" / stage
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        t0 = time.perf_counter()
        tmp = ck.tmp_dir_for(folder, 1, "bench")
        ck.write_rank_rng(tmp, 0)
        final = ck.finalize(tmp, folder, 1, state, {"step": 1, "config": cfg.to_dict()}, keep=1)
        dt = time.perf_counter() - t0
        size = sum(f.stat().st_size for f in final.iterdir())
        t0 = time.perf_counter()
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
        et = time.perf_counter() - t0
        params = sum(q.numel() for q in model.parameters())
        rows.append({"stage": stage, "params": params, "checkpoint_bytes": size, "checkpoint_s": dt,
                     "export_bytes": (folder / "model.safetensors").stat().st_size, "export_s": et})
        shutil.rmtree(folder, ignore_errors=True)
    return rows


def print_checkpoints(rows: list[dict[str, Any]]) -> None:
    print("\n| stage (paper) | params | checkpoint | write s (this disk) | export weights |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['stage']} | {r['params'] / 1e6:.2f} M | {r['checkpoint_bytes'] / 1e6:.0f} MB | {r['checkpoint_s']:.2f} | "
              f"{r['export_bytes'] / 1e6:.0f} MB |")


def _load_bench_shards() -> Any:
    spec = importlib.util.spec_from_file_location("bench_shards", REPO / "bench" / "shards.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=10000, help="paper-subset clips to aim for (the paper: ~10k)")
    ap.add_argument("--hits-per-video", type=int, default=40, help="events per video (Greatest Hits: ~48)")
    ap.add_argument("--size", type=int, default=224, help="frame size (world and shards)")
    ap.add_argument("--workers", type=int, default=2, help="processes for synth and shards")
    ap.add_argument("--samples-per-shard", type=int, default=16, help="the shard rule (docs/scaling.md)")
    ap.add_argument("--shards-per-task", type=int, default=4)
    ap.add_argument("--batch", type=int, default=16, help="training batch per GPU (loader.batch_size)")
    ap.add_argument("--read-workers", type=int, default=2)
    ap.add_argument("--frame-clips", type=int, default=800, help="clips per read-with-frames measurement")
    ap.add_argument("--audio-clips", type=int, default=4000, help="clips per audio-only measurement")
    ap.add_argument("--no-read", action="store_true", help="skip the read measurements")
    ap.add_argument("--data", type=Path, default=None, help="where the world and shards go (default: <data>/scale)")
    ap.add_argument("--json", type=Path, default=None, help="also write every figure here")
    ap.add_argument("--checkpoints-only", action="store_true", help="only the checkpoint sizes and write times")
    args = ap.parse_args()

    from physdiff.paths import data_root

    base = (args.data or data_root() / "scale").resolve()
    base.mkdir(parents=True, exist_ok=True)
    if args.checkpoints_only:
        print_checkpoints(checkpoint_costs(base))
        return
    world, shards = base / "world", base / "shards"
    videos = math.ceil(args.clips / (args.hits_per_video * PAPER_SHARE))
    py = [sys.executable, "-m", "physdiff"]
    out: dict[str, Any] = {"cores": os.cpu_count(), "load_avg_start": os.getloadavg(), "videos": videos,
                           "hits_per_video": args.hits_per_video, "size": args.size, "workers": args.workers,
                           "samples_per_shard": args.samples_per_shard, "shards_per_task": args.shards_per_task}

    print(f"world: {videos} videos x {args.hits_per_video} events at {args.size} px, {args.workers} processes -> {world}",
          flush=True)
    out["synth"] = timed([*py, "synth", "--out", str(world), "--videos", str(videos), "--hits-per-video",
                          str(args.hits_per_video), "--size", str(args.size), "--workers", str(args.workers),
                          "--seed", "0", "--no-progress"], base / "synth.log")
    summary = json.loads((world / "summary.json").read_text()) if (world / "summary.json").exists() else {}
    selected = paper_events(world)
    out["world"] = {"videos": len(selected), "events": summary.get("events"), "paper_events": sum(selected.values()),
                    "bytes": summary.get("bytes"), "content_s": summary.get("seconds")}
    print(f"  {out['synth']['wall_s']:.0f} s wall, {out['synth']['cpu_s']:.0f} CPU-s; "
          f"{out['world']['paper_events']} paper-subset events", flush=True)

    print(f"shards: samples_per_shard {args.samples_per_shard}, shards_per_task {args.shards_per_task} -> {shards}", flush=True)
    out["shards"] = timed([*py, "shards", "--source", str(world), "--out", str(shards), "--subset", "paper",
                           "--workers", str(args.workers), f"shards.samples_per_shard={args.samples_per_shard}",
                           f"shards.shards_per_task={args.shards_per_task}", f"shards.frame_size={args.size}"],
                          base / "shards.log")
    built = json.loads((shards / "summary.json").read_text())
    out["built"] = built
    written = built["written"]
    print(f"  {out['shards']['wall_s']:.0f} s wall, {out['shards']['cpu_s']:.0f} CPU-s; {written} clips written", flush=True)

    from physdiff.data.reader import load_manifest

    man = load_manifest(shards, "train")
    counts = [s["count"] for s in man["shards"] if s["count"] > 0]
    rows = rule_rows(counts, args.batch, f"built ({args.samples_per_shard})")
    for sps in (16, 32, 64, 128):
        if sps != args.samples_per_shard:
            rows += rule_rows(simulated_counts(world, selected, sps, args.shards_per_task), args.batch, f"would be ({sps})")
    out["rule"] = rows

    reads = []
    if not args.no_read:
        bs = _load_bench_shards()
        for frames in (False, True, "jpeg"):
            for w in sorted({0, args.read_workers}):
                if frames == "jpeg" and w == 0:
                    continue
                clips = args.audio_clips if frames is False else args.frame_clips
                wall, cpu, n = bs.read_rate(shards, frames, w, args.batch, clips, "shard")
                reads.append({"frames": frames, "workers": w, "clips_per_s": wall, "clips_per_cpu_s": cpu, "clips": n})
    out["read"] = reads
    out["checkpoints"] = checkpoint_costs(base)
    out["load_avg_end"] = os.getloadavg()

    # ------------------------------------------------------------------ the table
    print(f"\n## paper scale on this machine ({os.cpu_count()} cores, load average {out['load_avg_start'][0]:.1f} at the "
          f"start, {out['load_avg_end'][0]:.1f} at the end; other jobs share the cores: compare ratios)")
    tot = sum(d["bytes"] for d in built["splits"].values())
    print(f"| step | wall s | CPU s | clips | wall s/clip | CPU-s/clip |\n|---|---|---|---|---|---|")
    for step in ("synth", "shards"):
        t = out[step]
        print(f"| physdiff {step} | {t['wall_s']:.0f} | {t['cpu_s']:.0f} | {written} | {t['wall_s'] / written:.4f} "
              f"| {t['cpu_s'] / written:.4f} |")
    print(f"\nworld: {out['world']['videos']} videos, {out['world']['events']} events, {out['world']['paper_events']} in "
          f"the paper subset, {(out['world']['bytes'] or 0) / 1e9:.2f} GB, {(out['world']['content_s'] or 0) / 3600:.2f} h of content")
    splits = ", ".join(f"{k} {d['written']} clips / {d['shards']} shards / {d['bytes'] / 1e6:.0f} MB"
                       for k, d in built["splits"].items())
    print(f"shards: {written} written, {built['skipped']} skipped of {built['annotated']} annotated; {splits}; "
          f"{tot / max(1, written) / 1e3:.0f} kB/clip")
    if reads:
        print("\n| read (verify=shard) | workers | clips/s | clips/CPU-s |\n|---|---|---|---|")
        for r in reads:
            what = {False: "audio + modes", True: "+ 22 decoded frames", "jpeg": "+ frames undecoded (nvjpeg later)"}[r["frames"]]
            print(f"| {what} | {r['workers']} | {r['clips_per_s']:.0f} | {r['clips_per_cpu_s']:.0f} |")
    print(f"\n| shards (samples_per_shard) | nodes x GPUs | workers | shards | shards/reader | batches/epoch split "
          f"(resample) | clips used per epoch |\n|---|---|---|---|---|---|---|")
    for r in rows:
        used = f"{r['used']:.1%}" if r["split_batches"] else "cannot split: " + r.get("error", "")[:60]
        print(f"| {r['shards']} | {r['nodes']} x 8 | {r['workers']} | {r['num_shards']} | {r['shards_per_reader']:.2f} | "
              f"{r['split_batches']} ({r['resample_batches']}) | {used} |")
    print_checkpoints(out["checkpoints"])
    if args.json:
        from physdiff.fileio import atomic_write_text

        atomic_write_text(args.json, json.dumps(out, indent=1, default=str))
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
