"""Reading finished generate runs: the folders a listening study is built from.

A *generate run folder* (the generate stage's output contract) holds ``DONE.json``::

    {"stage": "generate", "variant": "ours", "diffusion_run": "...", "videos": N, "clips": M,
     "per_video": {"<video id>": "<folder>"}}

and per test video a folder with ``generation.json`` (``{"video": <source mp4>, "variant": ...,
"ground_truth": <wav or null>, "mp4": "<video id>_generated.mp4", "clips": [...]}``) and the muxed
``<video id>_generated.mp4`` (the original video stream copied, the generated soundtrack as AAC).

    run = read_generate_run("data/runs/generate-ours-1a2b3c")
    run.variant                      # "ours"
    run.videos["vid_0003"].mp4       # Path(".../vid_0003/vid_0003_generated.mp4")
    run.skipped                      # {"vid_0007": "no generation.json in ..."}: never silent

A broken ``DONE.json`` is a :class:`DataError` naming the file; a broken *video* folder is recorded
in ``skipped`` with its reason (that video then is not common to every run, and the study says so).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from physdiff.errors import DataError


@dataclass(frozen=True)
class GeneratedVideo:
    """One test video's outputs in a generate run."""

    video_id: str
    folder: Path
    mp4: Path  # the source video stream + this run's generated soundtrack
    source_video: Path | None  # the silent (or original) video the soundtrack was generated for
    ground_truth: Path | None  # the recording, when the video had one
    num_clips: int


@dataclass(frozen=True)
class GenerateRun:
    """A finished generate run: its variant and the videos it generated sound for."""

    path: Path
    variant: str | None
    diffusion_run: str | None
    videos: dict[str, GeneratedVideo]
    skipped: dict[str, str] = field(default_factory=dict)  # video id -> why it is unusable


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"unreadable {what} {path}: {e}") from None


def _video_folder(run: Path, video_id: str, folder: Any) -> Path:
    """Where a video's outputs are: ``per_video`` holds an absolute folder (today's writer) or one relative
    to the run; a run folder that was moved or copied still finds ``<run>/<video id>``."""
    if isinstance(folder, str) and folder:
        p = Path(folder)
        p = p if p.is_absolute() else run / p
        if p.is_dir():
            return p
        if (run / p.name).is_dir():  # the run was moved: the absolute path points at its old place
            return run / p.name
    return run / video_id


def _optional_path(value: Any, base: Path) -> Path | None:
    if not isinstance(value, str) or not value:
        return None
    p = Path(value)
    return p if p.is_absolute() else base / p


def read_generated_video(run: Path, video_id: str, folder: Any) -> GeneratedVideo:
    """One video's outputs; a DataError naming the file when something the study needs is missing."""
    vdir = _video_folder(run, video_id, folder)
    gpath = vdir / "generation.json"
    if not gpath.is_file():
        raise DataError(f"no generation.json in {vdir}")
    gen = _read_json(gpath, "generation summary")
    if not isinstance(gen, dict):
        raise DataError(f"{gpath} is not a JSON object")
    mp4_name = gen.get("mp4") or f"{video_id}_generated.mp4"
    mp4 = vdir / Path(str(mp4_name)).name  # a name inside the video folder, never a path elsewhere
    if not mp4.is_file():
        raise DataError(f"no muxed video {mp4} (named by {gpath})")
    clips = gen.get("clips")
    return GeneratedVideo(video_id=video_id, folder=vdir, mp4=mp4,
                          source_video=_optional_path(gen.get("video"), vdir),
                          ground_truth=_optional_path(gen.get("ground_truth"), vdir),
                          num_clips=len(clips) if isinstance(clips, list) else 0)


def read_generate_run(path: str | Path) -> GenerateRun:
    """A finished generate run folder (see the module docstring); DataError when it is not one."""
    run = Path(path)
    if not run.is_dir():
        raise DataError(f"generate run folder not found: {run}")
    done_path = run / "DONE.json"
    if not done_path.is_file():
        raise DataError(f"{run} is not a finished generate run (no DONE.json): run the generate stage first")
    done = _read_json(done_path, "generate run summary")
    if not isinstance(done, dict) or done.get("stage") != "generate":
        stage = done.get("stage") if isinstance(done, dict) else None
        raise DataError(f"{done_path} is not a generate run's summary (stage {stage!r}, expected 'generate')")
    per_video = done.get("per_video")
    if not isinstance(per_video, dict) or not per_video:
        raise DataError(f"{done_path} lists no videos (per_video is empty or missing)")
    videos: dict[str, GeneratedVideo] = {}
    skipped: dict[str, str] = {}
    for vid, folder in sorted(per_video.items()):
        try:
            videos[str(vid)] = read_generated_video(run, str(vid), folder)
        except DataError as e:
            skipped[str(vid)] = str(e)
    variant = done.get("variant")
    if variant is None:  # older summaries name the variant only per video
        for v in videos.values():
            gen = _read_json(v.folder / "generation.json", "generation summary")
            if gen.get("variant"):
                variant = gen["variant"]
                break
    return GenerateRun(path=run, variant=str(variant) if variant else None,
                       diffusion_run=done.get("diffusion_run"), videos=videos, skipped=skipped)
