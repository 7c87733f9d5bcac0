"""The generate stage: sound for every silent video of a split, from finished runs only (paper Sec. 3.4).

For each video of ``generate.split`` (its annotated onsets, read from the shards; or with
``generate.onsets=auto`` the strikes found in the video itself) it writes what
:func:`physdiff.inference.generate.generate_video` writes (clips, soundtrack, muxed MP4, comparison
figure, ``generation.json``) into ``<data>/runs/generate-<variant>-<hash>/<video id>/``, then
``DONE.json``. Its MLflow run holds a few WAVs, the MP4s, the comparison figures and every
``generation.json``::

    physdiff launch --stage generate --local --preset tiny
    physdiff generate --video clip.mp4 --onsets 0.5,1.2 --out out/        # one file (physdiff.cli.generate)
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import torch

from physdiff import identity
from physdiff.artifacts import finished, write_done
from physdiff.errors import DataError
from physdiff.logs import progress as progress_iter

log = logging.getLogger(__name__)

MLFLOW_WAVS = 4  # clip WAVs logged to MLflow (the rest stay in the run folder)


def split_videos(cfg: Any, split: str) -> dict[str, dict[str, Any]]:
    """{video id: {"video", "wav", "onsets"}} of the clips in ``split``'s shards (the clips evaluated)."""
    from physdiff.data.reader import make_loader

    videos: dict[str, dict[str, Any]] = {}
    for batch in make_loader(identity.shards_dir(cfg), split, batch_size=64, mode="eval", frames=False):
        for m in batch["meta"]:
            v = videos.setdefault(m["video_id"], {"video": m["source_video"], "wav": m["source_wav"], "onsets": []})
            v["onsets"].append(float(m["onset_seconds"]))
    for v in videos.values():
        v["onsets"].sort()
    return videos


def run_generate(cfg: Any, *, device: str | None = None, progress: bool | None = None) -> dict[str, Any]:
    """The ``generate`` task stage (skipped when its run folder is finished)."""
    from physdiff.inference.generate import generate_video
    from physdiff.inference.synthesizer import Synthesizer
    from physdiff.training.tracking import track_task

    progress = cfg.train.progress if progress is None else progress
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    out_dir = identity.artifact_dir(cfg, "generate")
    if (out_dir / "DONE.json").is_file():
        log.info(f"[generate] complete: {out_dir}")
        return finished(out_dir, "generate")
    diffusion_run = identity.artifact_dir(cfg, "diffusion")
    synth = Synthesizer.from_run(diffusion_run, device)  # finished artifacts only; names the missing one
    split = cfg.generate.split
    videos = split_videos(cfg, split)
    if not videos:
        raise DataError(f"no clips in the {split} split to generate for ({identity.shards_dir(cfg)})")
    log.info(f"[generate] {len(videos)} videos, {sum(len(v['onsets']) for v in videos.values())} clips, "
          f"{synth.variant}, {cfg.sampling.describe(synth.num_timesteps)} -> {out_dir}")
    for stale in [p for p in out_dir.iterdir() if p.is_dir()] if out_dir.is_dir() else []:
        if stale.name not in videos:  # a video folder of an interrupted earlier attempt on other shards
            shutil.rmtree(stale)
    items = sorted(videos.items())
    with track_task(cfg, out_dir, "generate", identity.artifact_hash(cfg, "generate")) as tracker:
        tracker.set_tags({"physdiff.diffusion_run": diffusion_run.name})
        results = {}
        for vid, v in progress_iter(items, desc="[generate] videos", enabled=progress):
            onsets, info = v["onsets"], {"source": "annotated", "times": v["onsets"], "confidences": [None] * len(v["onsets"])}
            if cfg.generate.onsets == "auto":  # the strikes found in the video itself (physdiff.onsets)
                from physdiff.onsets import resolve_onsets

                found = resolve_onsets(v["video"], "auto")
                onsets, info = found.times, found.to_json()
            results[vid] = generate_video(synth, v["video"], onsets, out_dir / vid, cfg.sampling,
                                          truth_wav=v["wav"], progress=False, name=vid, onset_info=info)
        summary = {"stage": "generate", "out": str(out_dir), "variant": synth.variant, "split": split,
                   "diffusion_run": str(diffusion_run), "videos": len(results),
                   "clips": sum(len(r["clips"]) for r in results.values()),
                   "sampling": cfg.sampling.describe(synth.num_timesteps),
                   "per_video": {vid: str(out_dir / vid) for vid in results}, "mlflow_run_id": tracker.run_id}
        _log_media(tracker, out_dir, results)
        tracker.log_metrics({"generate/videos": len(results), "generate/clips": summary["clips"]}, step=0)
        write_done(out_dir, summary)
    log.info(f"[generate] wrote {summary['clips']} clips for {summary['videos']} videos under {out_dir}")
    return summary


def _log_media(tracker: Any, out_dir: Path, results: dict[str, dict[str, Any]]) -> None:
    """A few WAVs, every MP4, comparison figure and generation.json, one MLflow folder per video."""
    wavs = 0
    for vid, r in results.items():
        folder = out_dir / vid
        for name in (r["mp4"], r["figure"], "generation.json"):
            tracker.log_artifact(folder / name, f"videos/{vid}")
        for c in r["clips"]:
            if wavs < MLFLOW_WAVS:
                tracker.log_artifact(folder / c["wav"], f"videos/{vid}")
                wavs += 1
