"""Media I/O for ingestion: the wav at the clip rate, and the frames of one video decoded once.

Audio: ``soundfile`` reads the wav (torchaudio.load needs torchcodec, absent here), channels are
averaged to mono and the whole recording is resampled once with ``torchaudio.functional.resample``
(96 kHz -> 44.1 kHz in the real dataset), so every clip cut from it is the same signal a test can
recompute. A recording *below* the clip rate (8 kHz into 44.1 kHz clips) is upsampled too, but holds
nothing above half its own rate: :func:`band_limited_reason` says so, and the shard builder warns and
records it in the manifest (an error with ``--strict``), since the clips' top octaves are silently empty.

Video: PyAV decodes the stream once, front to back (no per-clip seeking: seeking H.264 lands on
keyframes and costs a GOP per clip), keeping only the wanted frame indices. Frame ``i`` is the one
displayed during ``[i / fps, (i + 1) / fps)`` with fps read from the container (29.97 = 30000/1001
in Greatest Hits), so the onset frame of an event at ``t`` seconds is ``floor(t * fps)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from physdiff.errors import DataError


# PyAV converts every decoded frame with a fresh swscale context; with its default (one slice thread per core)
# each conversion creates and joins a thread pool. On 64-224 px frames that costs 7-10x the conversion itself
# (measured: a 359-frame 224 px video 1.35 s -> 0.19 s, the same pixels), and the join can hang for good in a
# forked shard-build worker (FFmpeg's avpriv_slicethread_free waiting on a worker that missed its wake-up; a
# py-spy / gdb dump of the Python 3.12 suite under load). One thread; the builds run one process per core.
SWS_THREADS = 1


# ----------------------------------------------------------------------------- audio


class BandLimitedWarning(UserWarning):
    """A recording sampled below the clip rate: its clips hold nothing above half its own rate."""


@dataclass
class Recording:
    """A recording at the clip rate, and the rate it was sampled at."""

    path: Path
    audio: np.ndarray  # (T,) mono float32 at the requested rate
    native_rate: int


def band_limited_reason(native_rate: int, sample_rate: int) -> str | None:
    """Why a recording at ``native_rate`` cannot fill clips at ``sample_rate``; None when it can."""
    if native_rate >= sample_rate:
        return None
    return (f"band-limited recording: {native_rate} Hz is below audio.sample_rate {sample_rate} Hz, so its clips "
            f"hold nothing above {native_rate / 2:g} Hz")


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """The whole recording as mono float32 at ``sample_rate``: shape (T,) (:func:`load_recording` also gives its rate)."""
    return load_recording(path, sample_rate).audio


def load_recording(path: str | Path, sample_rate: int) -> Recording:
    """The whole recording as mono float32 at ``sample_rate``, with its native rate.

    Raises DataError naming the file when it is missing, unreadable, truncated (fewer frames than its
    header declares), empty or holds non-finite samples.
    """
    import soundfile as sf
    import torch
    import torchaudio.functional as AF

    path = Path(path)
    if not path.exists():
        raise DataError(f"missing wav {path}")
    try:
        with sf.SoundFile(str(path)) as f:
            declared = f.frames
            sr = f.samplerate
            data = f.read(dtype="float32", always_2d=True)  # (T, C)
    except (RuntimeError, sf.LibsndfileError, ValueError) as e:  # libsndfile reports corrupt files this way
        raise DataError(f"unreadable wav {path}: {e}") from e
    if data.shape[0] < declared:
        raise DataError(f"truncated wav {path}: header declares {declared} frames, file holds {data.shape[0]}")
    if data.shape[0] == 0:
        raise DataError(f"empty wav {path}")
    _check_truncated_riff(path)
    mono = data.mean(axis=1)  # (T,)
    if not np.isfinite(mono).all():
        raise DataError(f"non-finite samples in wav {path}")
    if sr == sample_rate:
        return Recording(path, np.ascontiguousarray(mono, dtype=np.float32), int(sr))
    with torch.no_grad():
        out = AF.resample(torch.from_numpy(mono), sr, sample_rate)  # (T',)
    return Recording(path, out.numpy().astype(np.float32, copy=False), int(sr))


def _check_truncated_riff(path: Path) -> None:
    """libsndfile silently shortens a WAV whose data chunk was cut; catch it from the RIFF header.

    The ``data`` chunk declares its byte size; a file shorter than offset + size lost its tail (a
    copy interrupted mid-way). Only plain RIFF/WAVE files are checked; other formats pass.
    """
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return
        size = path.stat().st_size
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            hdr = f.read(8)
            if len(hdr) < 8:
                return
            cid, clen = hdr[:4], int.from_bytes(hdr[4:8], "little")
            if cid == b"data":
                if clen != 0xFFFFFFFF and pos + 8 + clen > size:
                    raise DataError(
                        f"truncated wav {path}: data chunk declares {clen} bytes, file holds {size - pos - 8}"
                    )
                return
            pos += 8 + clen + (clen & 1)


def cut_clip(audio: np.ndarray, start: int, length: int) -> np.ndarray:
    """``audio[start : start + length]``, zero-padded at the end (the paper's clip): shape (length,)."""
    seg = audio[start : start + length]
    if seg.shape[0] == length:
        return np.ascontiguousarray(seg, dtype=np.float32)
    out = np.zeros(length, dtype=np.float32)
    out[: seg.shape[0]] = seg
    return out


# ----------------------------------------------------------------------------- video


@dataclass
class VideoFrames:
    """Frames picked from one decode pass: ``frames[i]`` is (S, S, 3) uint8 for each wanted index i < num_frames."""

    path: Path
    fps: Fraction
    num_frames: int
    width: int
    height: int
    frames: dict[int, np.ndarray]


def video_fps(path: str | Path) -> Fraction:
    """The container's frame rate (average_rate, else guessed_rate), e.g. Fraction(30000, 1001)."""
    import av

    path = Path(path)
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise DataError(f"no video stream in {path}")
            return _stream_fps(c.streams.video[0], path)
    except av.error.FFmpegError as e:
        raise DataError(f"unreadable video {path}: {e}") from e


def _stream_fps(stream, path: Path) -> Fraction:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate or float(rate) <= 0:
        raise DataError(f"video {path} has no usable frame rate")
    return Fraction(rate)


def onset_frame(t: float, fps: Fraction) -> int:
    """Index of the frame on screen at time ``t`` (seconds from the video start)."""
    return int(math.floor(t * float(fps) + 1e-6))  # epsilon: a time exactly on a frame boundary belongs to that frame


def window_start(onset: int, num_frames: int) -> int:
    """First frame of the ``num_frames`` window around onset frame ``onset``: onset - n//2 .. onset + n - n//2 - 1."""
    return onset - num_frames // 2


def window_wanted(onsets: "list[int] | tuple[int, ...]", num_frames: int) -> set[int]:
    """Every frame index any of the windows needs (what one decode pass must keep; negatives dropped)."""
    wanted: set[int] = set()
    for f0 in onsets:
        s = window_start(f0, num_frames)
        wanted.update(range(max(0, s), s + num_frames))
    return wanted


def frame_window(onset: int, num_frames: int, total_frames: int) -> tuple[list[int], int]:
    """The frame indices of the window around ``onset`` clamped to [0, total_frames), and how many were clamped.

    The one definition of "the 22 frames around a hit", shared by the shard writer and generation:
    a window that runs past an end of the video repeats its first / last frame.
    """
    s = window_start(onset, num_frames)
    want = range(s, s + num_frames)
    idx = [min(max(i, 0), total_frames - 1) for i in want]
    return idx, sum(i != j for i, j in zip(idx, want))


def square_resize(rgb: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop (H, W, 3) to a square (keeps the aspect ratio), then resize to (size, size, 3) uint8."""
    from PIL import Image

    h, w = rgb.shape[:2]
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    sq = rgb[y0 : y0 + s, x0 : x0 + s]  # (s, s, 3)
    if s == size:
        return np.ascontiguousarray(sq)
    img = Image.fromarray(np.ascontiguousarray(sq)).resize((size, size), Image.BILINEAR, reducing_gap=2.0)
    return np.asarray(img)


def decode_frames(path: str | Path, wanted: set[int], size: int) -> VideoFrames:
    """Decode ``path`` once, front to back, keeping the frames at ``wanted`` indices, resized to ``size``.

    The last frame is always kept as well (callers clamp indices past the end to it). Raises DataError
    naming the file when it cannot be opened or decoding fails part-way.
    """
    import av

    path = Path(path)
    if not path.exists():
        raise DataError(f"missing video {path}")
    frames: dict[int, np.ndarray] = {}
    last = None
    n = 0
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise DataError(f"no video stream in {path}")
            stream = c.streams.video[0]
            fps = _stream_fps(stream, path)
            width, height = stream.codec_context.width, stream.codec_context.height
            for frame in c.decode(stream):
                if n in wanted:
                    frames[n] = square_resize(frame.to_ndarray(format="rgb24", threads=SWS_THREADS), size)
                last = frame
                n += 1
            if last is not None and (n - 1) not in frames:
                frames[n - 1] = square_resize(last.to_ndarray(format="rgb24", threads=SWS_THREADS), size)
    except av.error.FFmpegError as e:
        raise DataError(f"unreadable video {path}: {e}") from e
    if n == 0:
        raise DataError(f"video {path} holds no decodable frames")
    return VideoFrames(path, fps, n, width, height, frames)
