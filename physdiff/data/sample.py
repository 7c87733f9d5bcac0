"""The shard sample format: one clip = one WebDataset sample (see shards/README.md).

Members of sample ``<key>`` (key = ``<video id>_<onset sample>``; WebDataset splits a member name at
its first dot, so keys never contain one):

    <key>.flac            audio (T,) mono at cfg.audio.sample_rate, FLAC 24-bit, lossless for the stored values
    <key>.modes.npy       float32 (3, D): rows f (Hz), p (dB), lambda (dB/s) per bin (physdiff.physics)
    <key>.json            metadata (material, action, reaction, onset, video id, fps, split, sources, ...)
    <key>.frames.mjpeg    the 22 frames onset-11 .. onset+10 (frame 11 = the onset frame): 22 RGB JPEG
                          files back to back (Motion JPEG; ``ffplay -f mjpeg`` plays it), their byte
                          lengths in ``meta["frame_bytes"]``

One member for the frames instead of 22 keeps a sample at 4 tar members (USTAR headers, no PAX), so a
reader that skips frames parses 4 headers per clip, not 25: tar header parsing dominated reading.

Audio is stored as 24-bit integers with a per-clip gain (``meta["audio_gain"]``, 1.0 unless the
resampled clip peaks above full scale), so ``encode_audio`` -> ``decode_audio`` returns exactly
``quantize_audio(x)``; the modes are estimated from that quantised clip, so they describe the
stored audio. Nothing is pickled: arrays are ``.npy`` read with ``allow_pickle=False``.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

from physdiff.errors import DataError

AUDIO_EXT = "flac"
MODES_EXT = "modes.npy"
META_EXT = "json"
FRAMES_EXT = "frames.mjpeg"
_FULL = 2**23  # 24-bit full scale


def is_frame_member(name: str) -> bool:
    return name.endswith("." + FRAMES_EXT)


def audio_gain(x: np.ndarray) -> float:
    """1.0, or the peak when the clip exceeds full scale (resampling overshoot), so 24-bit PCM never clips."""
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    return peak if peak > 1.0 else 1.0


def quantize_audio(x: np.ndarray, gain: float) -> np.ndarray:
    """The exact float32 values a FLAC round trip returns: (T,) -> (T,)."""
    q = np.clip(np.round(x / gain * _FULL), -_FULL, _FULL - 1).astype(np.int32)
    return (q.astype(np.float64) / _FULL * gain).astype(np.float32)


def encode_audio(x: np.ndarray, sample_rate: int, gain: float) -> bytes:
    import soundfile as sf

    q = np.clip(np.round(x / gain * _FULL), -_FULL, _FULL - 1).astype(np.int32)  # (T,)
    buf = io.BytesIO()
    # int32 input: libsndfile keeps the top 24 bits for PCM_24, so shifting by 8 is exact.
    sf.write(buf, q << 8, sample_rate, format="FLAC", subtype="PCM_24")
    return buf.getvalue()


def decode_audio(data: bytes, gain: float = 1.0) -> tuple[np.ndarray, int]:
    """FLAC bytes -> (float32 (T,), sample rate)."""
    import soundfile as sf

    x, sr = sf.read(io.BytesIO(data), dtype="int32", always_2d=False)  # (T,)
    return ((x >> 8).astype(np.float64) / _FULL * gain).astype(np.float32), int(sr)


def encode_npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()


def decode_npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def encode_frames(frames: list[np.ndarray], quality: int) -> tuple[bytes, list[int]]:
    """F x (H, W, 3) uint8 -> (concatenated JPEG bytes, byte length of each JPEG)."""
    parts = [encode_jpeg(f, quality) for f in frames]
    return b"".join(parts), [len(p) for p in parts]


def decode_frames(data: bytes, lengths: list[int]) -> np.ndarray:
    """Concatenated JPEGs + their lengths -> (F, H, W, 3) uint8."""
    if sum(lengths) != len(data):
        raise ValueError(f"frame lengths sum to {sum(lengths)} bytes, member holds {len(data)}")
    out, pos = [], 0
    for n in lengths:
        out.append(decode_jpeg(data[pos : pos + n]))
        pos += n
    return np.stack(out)


def decode_jpeg(data: bytes) -> np.ndarray:
    """JPEG bytes -> (H, W, 3) uint8."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


def encode_meta(meta: dict[str, Any]) -> bytes:
    return json.dumps(meta, sort_keys=True).encode()


def decode_meta(data: bytes) -> dict[str, Any]:
    return json.loads(data)


def check_key(key: str) -> None:
    if "." in key or "/" in key:
        raise DataError(f"sample key {key!r} contains '.' or '/', which WebDataset cannot group")
