"""Small generated data for the onset tests: a 64 px world (the tiny preset's frame size) and a 224 px H.264 / AAC re-encode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def onset_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two videos x 8 events at 64 px (world seed 3), every event's ground truth in ``<id>_physics.json``."""
    from physdiff.world import generate_world
    from physdiff.world.config import WorldConfig

    out = tmp_path_factory.mktemp("onset-world")
    generate_world(out, WorldConfig(seed=3, videos=2, hits_per_video=8, size=64), progress=False)
    return out


@pytest.fixture(scope="session")
def video_224(onset_world: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(mp4, physics.json): the first world video upscaled to 224 px and re-encoded (libx264 crf 23, AAC 44.1 kHz).

    A different encode from the world's own (frame size, quality, audio rate), as a user's clip would be.
    """
    import av
    import soundfile as sf
    from PIL import Image

    from physdiff.world.media import write_mp4

    src = sorted(onset_world.glob("*_denoised.mp4"))[0]
    with av.open(str(src)) as c:
        stream = c.streams.video[0]
        fps = stream.average_rate
        frames = [np.asarray(Image.fromarray(f.to_ndarray(format="rgb24")).resize((224, 224), Image.BICUBIC))
                  for f in c.decode(stream)]  # each (224, 224, 3) uint8
    audio, sr = sf.read(str(src.with_suffix(".wav")), dtype="float32")
    out = tmp_path_factory.mktemp("onset-224") / "user_clip_224.mp4"
    write_mp4(out, iter(frames), 224, fps, audio, sr, 44100, 23, "veryfast")
    return out, src.with_name(src.name.replace("_denoised.mp4", "_physics.json"))
