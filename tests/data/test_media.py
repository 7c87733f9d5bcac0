"""Frame decoding for ingestion: one swscale thread gives PyAV's default pixels (physdiff.data.media.SWS_THREADS)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from physdiff.data.media import SWS_THREADS, decode_frames, square_resize
from physdiff.world.media import write_mp4


def test_one_swscale_thread_decodes_the_same_pixels_as_the_default(tmp_path: Path) -> None:
    # textured colour frames (chroma varies within a frame, so slice boundaries of a threaded conversion matter)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:96, 0:96]
    frames = [np.stack([(xx * 2 + k * 7) % 256, (yy * 3 + k * 5) % 256, rng.integers(0, 256, (96, 96))],
                       axis=-1).astype(np.uint8) for k in range(12)]
    path = tmp_path / "clip.mp4"
    n = write_mp4(path, frames, 96, Fraction(30000, 1001), np.zeros(8000, np.float32), 16000, 16000,
                  crf=18, preset="veryfast")
    assert SWS_THREADS == 1
    got = decode_frames(path, set(range(n)), 64)

    import av

    with av.open(str(path)) as c:  # PyAV's default conversion: one slice thread per core
        ref = [square_resize(f.to_ndarray(format="rgb24"), 64) for f in c.decode(video=0)]
    assert got.num_frames == n == len(ref) == 12
    for i in range(n):
        assert got.frames[i].shape == (64, 64, 3)
        np.testing.assert_array_equal(got.frames[i], ref[i])
