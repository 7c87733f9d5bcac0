"""Real generate-run folders for the listening-study tests, written without a trained model.

A source video is a real H.264 + AAC mp4 (``physdiff.world.media.write_mp4``: a square that moves and
strikes) with its 96 kHz recording beside it; a "generated" run gives every video a soundtrack of
its own (a decaying tone whose pitch names the method) muxed by the generate stage's own
``mux_soundtrack``, plus the ``generation.json`` / ``DONE.json`` the stage writes.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np

FPS = Fraction(30000, 1001)
TRACK_RATE = 44100
RECORDING_RATE = 96000
# The tone of each method's soundtrack (Hz): a test can tell the methods apart by ear or by FFT.
TONES = {"ours": 660.0, "video": 330.0, "video_label": 495.0, "video_spec": 880.0}


def strike(rate: int, seconds: float, freq: float, onsets: list[float], decay: float = 18.0) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    out = np.zeros_like(t)
    for t0 in onsets:
        dt = np.clip(t - t0, 0, None)
        out += np.where(t >= t0, np.exp(-decay * dt) * np.sin(2 * np.pi * freq * dt), 0.0)
    return (0.9 * out / max(1e-9, np.abs(out).max())).astype(np.float32)


def make_source_video(folder: Path, video_id: str, frames: int = 30, size: int = 64, seed: int = 0) -> dict:
    """``<id>_denoised.mp4`` (H.264 + AAC, ``frames`` frames at 29.97 fps) and ``<id>_denoised.wav`` (96 kHz)."""
    from physdiff.world.media import write_mp4, write_wav

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    seconds = frames / float(FPS)
    onsets = [round(seconds * 0.3, 3)]
    recording = strike(RECORDING_RATE, seconds, float(rng.uniform(900, 1500)), onsets, decay=12.0)
    mp4, wav = folder / f"{video_id}_denoised.mp4", folder / f"{video_id}_denoised.wav"

    def frame(k: int) -> np.ndarray:
        img = np.full((size, size, 3), 40, np.uint8)
        y = int((size - 16) * min(1.0, k / max(1, frames * 0.3)))  # falls onto the object, then rests
        img[y : y + 16, size // 2 - 8 : size // 2 + 8] = (230, 200, 60)
        img[size - 12 :, :] = (90, 120, 160)
        return img

    write_mp4(mp4, (frame(k) for k in range(frames)), size, FPS, recording, RECORDING_RATE, TRACK_RATE, 23, "veryfast")
    write_wav(wav, recording, RECORDING_RATE, "FLOAT")
    return {"video": mp4, "wav": wav, "onsets": onsets, "seconds": seconds}


def make_generate_run(run_dir: Path, variant: str, sources: dict[str, dict], *, tone: float | None = None,
                      absolute_paths: bool = True) -> Path:
    """A finished generate run folder of ``variant`` for the videos in ``sources`` (id -> make_source_video())."""
    import soundfile as sf
    from PIL import Image

    from physdiff.inference.media import mux_soundtrack

    tone = tone or TONES.get(variant, 550.0)
    per_video = {}
    clips_total = 0
    for vid, src in sources.items():
        out = run_dir / vid
        out.mkdir(parents=True, exist_ok=True)
        track = strike(TRACK_RATE, src["seconds"], tone, src["onsets"])
        clip = track[: int(0.25 * TRACK_RATE)]
        sf.write(out / f"clip_000_{src['onsets'][0]:.3f}s.wav", clip, TRACK_RATE, subtype="FLOAT")
        sf.write(out / "soundtrack.wav", track, TRACK_RATE, subtype="FLOAT")
        mp4 = mux_soundtrack(src["video"], track, TRACK_RATE, out / f"{vid}_generated.mp4")
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(out / "comparison.png")
        summary = {"video": str(src["video"]), "variant": variant, "diffusion_run": f"/runs/diffusion-{variant}",
                   "sample_rate": TRACK_RATE, "fps": float(FPS), "duration": src["seconds"],
                   "soundtrack": "soundtrack.wav", "mp4": mp4.name, "figure": "comparison.png",
                   "ground_truth": str(src["wav"]),
                   "clips": [{"onset": src["onsets"][0], "wav": f"clip_000_{src['onsets'][0]:.3f}s.wav"}]}
        (out / "generation.json").write_text(json.dumps(summary, indent=2))
        per_video[vid] = str(out) if absolute_paths else vid
        clips_total += 1
    done = {"stage": "generate", "variant": variant, "diffusion_run": f"/runs/diffusion-{variant}",
            "videos": len(per_video), "clips": clips_total, "per_video": per_video}
    (run_dir / "DONE.json").write_text(json.dumps(done, indent=2))
    return run_dir
