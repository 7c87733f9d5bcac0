"""The study's media files: probing, copying into the study, the reference track, and safe lookup.

Everything a participant's browser receives comes from ``<study>/media/`` and nowhere else:
:func:`safe_media_path` resolves a path recorded in ``study.json`` and refuses anything that leaves
that folder (``..``, absolute paths, a symlink anywhere on the way), so a tampered study file or a
symlink planted in the folder still cannot serve ``/etc/passwd``.

    info = probe_mp4(Path("vid_0003_generated.mp4"))   # MediaInfo(duration=2.0, video_codec="h264", ...)
    place_file(src, study / "media/v000/m1.mp4", mode="link")   # hard link, or a copy across devices
    safe_media_path(study / "media", "v000/m1.mp4")              # Path, or None when it escapes
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from physdiff.errors import DataError

MEDIA_DIR = "media"
# Browsers decode H.264 + AAC in mp4 everywhere (the generate stage writes exactly this).
BROWSER_VIDEO_CODECS = ("h264",)
BROWSER_AUDIO_CODECS = ("aac",)


@dataclass(frozen=True)
class MediaInfo:
    duration: float  # seconds (the container's, else the longest stream's)
    video_codec: str
    audio_codec: str
    width: int
    height: int


def probe_mp4(path: Path) -> MediaInfo:
    """Codecs and duration of an mp4; DataError naming the file when it is unreadable or lacks a stream."""
    import av

    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                raise DataError(f"no video stream in {path}")
            if not c.streams.audio:
                raise DataError(f"no audio stream in {path}: a listening study needs the soundtrack muxed in")
            vs, aus = c.streams.video[0], c.streams.audio[0]
            if c.duration is not None:
                duration = float(c.duration) / av.time_base
            else:
                duration = max(float(s.duration * s.time_base) for s in (vs, aus) if s.duration is not None)
            return MediaInfo(duration=duration, video_codec=vs.codec_context.name, audio_codec=aus.codec_context.name,
                             width=int(vs.codec_context.width), height=int(vs.codec_context.height))
    except av.error.FFmpegError as e:
        raise DataError(f"unreadable video {path}: {e}") from None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def place_file(src: Path, dst: Path, mode: str = "link") -> str:
    """Put ``src`` at ``dst`` inside the study: a hard link (``mode="link"``; a copy when the two are on
    different devices or the file system refuses links) or a copy. Returns what was done ("link" | "copy").

    A hard link is safe here because the generate stage publishes files by rename, never by writing in
    place: a later regeneration gives the run a new inode and leaves the study's file as it was.
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    if mode == "link":
        try:
            os.link(src, dst)
            return "link"
        except OSError:
            pass
    elif mode != "copy":
        raise ValueError(f"media mode must be link or copy, got {mode!r}")
    shutil.copyfile(src, dst)
    return "copy"


def safe_media_path(media_root: Path, rel: str) -> Path | None:
    """``media_root / rel`` when it is a regular file inside ``media_root`` reached without symlinks; else None.

    Refused: absolute ``rel``, any ``..`` or empty component, backslashes or NUL bytes, a symlink at any
    component (a link pointing back inside is refused too: the study never makes links), and anything
    whose resolved path is not below the resolved root.
    """
    if not rel or "\x00" in rel or "\\" in rel or rel.startswith("/"):
        return None
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return None
    root = media_root.resolve()
    cur = root
    for p in parts:
        cur = cur / p
        if cur.is_symlink():
            return None
    try:
        real = cur.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not real.is_relative_to(root) or not real.is_file():
        return None
    return real


# ----------------------------------------------------------------------------- the reference recording

REFERENCE_RATE = 48000  # the recording's track rate in the study (96 kHz AAC would double its size for nothing audible)
REFERENCE_PEAK = 0.9  # the generated soundtracks are peak-normalised to 0.9 (place_clips): match their level


def recording_track(wav: Path, duration: float, rate: int = REFERENCE_RATE) -> np.ndarray:
    """The recording as a mono float32 track at ``rate``, cut or zero-padded to ``duration`` seconds and
    peak-normalised like the generated soundtracks, so loudness does not give the reference away."""
    import soundfile as sf
    from scipy import signal

    try:
        audio, sr = sf.read(str(wav), dtype="float64", always_2d=True)
    except (RuntimeError, OSError, sf.LibsndfileError) as e:
        raise DataError(f"unreadable recording {wav}: {e}") from None
    mono = audio.mean(axis=1)  # (N,)
    if sr != rate:
        g = int(np.gcd(int(sr), rate))
        mono = signal.resample_poly(mono, rate // g, int(sr) // g)
    n = int(round(duration * rate))
    track = np.zeros(n, dtype=np.float64)
    track[: min(n, mono.size)] = mono[:n]
    peak = float(np.abs(track).max()) if track.size else 0.0
    if peak <= 0:
        raise DataError(f"recording {wav} is silent over the video's {duration:.2f} s")
    return (track * (REFERENCE_PEAK / peak)).astype(np.float32)


def mux_track(video: Path, track: np.ndarray, rate: int, out: Path) -> Path:
    """The video stream of ``video`` (copied) + ``track`` as AAC, written to ``out``.

    A thin wrapper over generation's own ``mux_soundtrack`` (physdiff.inference.media), so the reference and
    the generated videos are muxed by the same code.
    """
    from physdiff.inference.media import mux_soundtrack

    out.parent.mkdir(parents=True, exist_ok=True)
    return mux_soundtrack(video, track, rate, out)
