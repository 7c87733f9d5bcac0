"""A tiny Greatest Hits layout folder written with PyAV + soundfile, with frames that name themselves.

Frame ``i`` of every video is a flat grey of level ``GREY_STEP * i`` (so a decoded frame tells its own
index through H.264 + JPEG), the video is wider than tall (exercising the centre crop), the wav is
96 kHz PCM_16 with a decaying tone at every annotated onset over faint noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

FPS = Fraction(30000, 1001)
GREY_STEP = 4
WAV_RATE = 96000


@dataclass
class VideoSpec:
    video_id: str
    lines: list[str]  # raw times-file lines
    seconds: float = 1.8  # <= 60 frames so GREY_STEP * i stays < 256
    split: str | None = "train"
    audio_seconds: float | None = None  # defaults to seconds
    thumb: bool = False
    silent_until: float = 0.0  # exact zeros before this time (a silent clip there)
    extra: dict = field(default_factory=dict)


DEFAULT_SPECS = [
    VideoSpec("2015-02-16-16-49-06", ["0.400000 wood hit static", "0.900000 metal hit static",
                                      "1.300000 glass hit static", "1.500000 wood scratch rigid-motion"]),
    VideoSpec("2015-02-16-17-02-11", ["0.350000 ceramic hit static", "0.800000 None hit static",
                                      "1.200000 rock hit static", "5.000000 wood hit static"], thumb=True),
    VideoSpec("2015-09-28-00-28-26-247", ["0.300000 cloth hit static", "0.750000 plastic hit static",
                                          "1.400000 drywall hit static"], split="test"),
]


def write_video(path: Path, seconds: float, width: int = 48, height: int = 32) -> int:
    import av

    n = int(round(seconds * float(FPS)))
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=FPS)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.options = {"crf": "4", "preset": "ultrafast"}
        for i in range(n):
            arr = np.full((height, width, 3), GREY_STEP * i, dtype=np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return n


def write_wav(path: Path, seconds: float, onsets: list[float], seed: int, silent_until: float = 0.0) -> np.ndarray:
    import soundfile as sf

    rng = np.random.default_rng(seed)
    n = int(round(seconds * WAV_RATE))
    t = np.arange(n) / WAV_RATE
    x = 0.003 * rng.standard_normal(n)
    for k, t0 in enumerate(onsets):
        m = t >= t0
        tt = t[m] - t0
        x[m] += 0.5 * np.exp(-25 * tt) * np.sin(2 * np.pi * (500 + 300 * k) * tt)
    x[t < silent_until] = 0.0
    sf.write(str(path), x.astype(np.float32), WAV_RATE, subtype="PCM_16")
    return x


def make_folder(root: Path, specs: list[VideoSpec] | None = None, split_files: bool = True) -> Path:
    specs = DEFAULT_SPECS if specs is None else specs
    root.mkdir(parents=True, exist_ok=True)
    for k, sp in enumerate(specs):
        onsets = []
        for line in sp.lines:
            try:
                onsets.append(float(line.split()[0]))
            except (ValueError, IndexError):
                pass
        (root / f"{sp.video_id}_times.txt").write_text("\n".join(sp.lines) + "\n")
        write_wav(root / f"{sp.video_id}_denoised.wav", sp.audio_seconds or sp.seconds, onsets, k, sp.silent_until)
        write_video(root / f"{sp.video_id}_denoised.mp4", sp.seconds, 64, 48)
        if sp.thumb:
            write_video(root / f"{sp.video_id}_denoised_thumb.mp4", sp.seconds)
    if split_files:
        for split in ("train", "test"):
            ids = [sp.video_id for sp in specs if sp.split == split]
            (root / f"{split}.txt").write_text("".join(i + "\n" for i in ids))
    return root
