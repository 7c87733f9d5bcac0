"""Writing a recording in the Greatest Hits formats: H.264 + AAC mp4 (PyAV) and a 96 kHz wav (soundfile)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Iterable

import av
import numpy as np
import soundfile as sf
from scipy import signal


SFC_SET_ADD_PEAK_CHUNK = 0x1050  # libsndfile command (sndfile.h); soundfile does not wrap it


def write_wav(path: Path, audio: np.ndarray, sample_rate: int, subtype: str) -> None:
    """Mono wav; FLOAT keeps the ground truth exact (PCM_16 would put a floor at -96 dBFS).

    libsndfile adds a PEAK chunk holding the *wall-clock time* to float wavs; it is turned off so the
    same seed gives the same bytes.
    """
    with sf.SoundFile(str(path), "w", sample_rate, 1, subtype=subtype, format="WAV") as f:
        sf._snd.sf_command(f._file, SFC_SET_ADD_PEAK_CHUNK, sf._ffi.NULL, 0)  # SF_FALSE
        f.write(audio)


def write_mp4(path: Path, frames: Iterable[np.ndarray], size: int, fps: Fraction, audio: np.ndarray,
              sample_rate: int, track_rate: int, crf: int, preset: str) -> int:
    """Encode frames (each (size, size, 3) uint8 RGB) as H.264 yuv420p at ``fps``, with ``audio``
    (mono, ``sample_rate``) resampled to ``track_rate`` as an AAC track. Returns the frame count.

    One encoder thread: the generator parallelises over videos, and the bytes stay reproducible.
    """
    g = np.gcd(sample_rate, track_rate)
    track = signal.resample_poly(audio.astype(np.float64), track_rate // g, sample_rate // g).astype(np.float32)
    with av.open(str(path), mode="w") as container:
        vs = container.add_stream("libx264", rate=fps)
        vs.width = vs.height = size
        vs.pix_fmt = "yuv420p"
        vs.codec_context.thread_count = 1
        # mbtree off: x264's macroblock-tree lookahead made the bitstream (and decoded frames) differ between
        # runs on identical input in some processes (measured here: 1 video in 4 at 32 px, most at 224 px);
        # without it the bytes are reproducible, at a few % of bitrate.
        vs.options = {"crf": str(crf), "preset": preset, "x264-params": "mbtree=0"}
        aus = container.add_stream("aac", rate=track_rate)
        aus.codec_context.layout = "mono"
        aus.codec_context.thread_count = 1
        chunk = aus.codec_context.frame_size or 1024
        sent = 0  # audio samples handed to the encoder, interleaved with the video by time
        count = 0
        for k, rgb in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            vf.pts = k
            vf.time_base = Fraction(1) / fps
            for packet in vs.encode(vf):
                container.mux(packet)
            count += 1
            until = min(track.size, int((k + 1) / fps * track_rate))
            sent = _push_audio(container, aus, track, sent, until, chunk, track_rate)
        sent = _push_audio(container, aus, track, sent, track.size, chunk, track_rate, final=True)
        for packet in vs.encode():
            container.mux(packet)
        for packet in aus.encode():
            container.mux(packet)
    return count


def _push_audio(container: av.container.OutputContainer, stream: av.audio.stream.AudioStream, track: np.ndarray,
                sent: int, until: int, chunk: int, rate: int, final: bool = False) -> int:
    while sent + chunk <= until or (final and sent < until):
        piece = track[sent:sent + chunk]
        if piece.size < chunk:
            piece = np.concatenate([piece, np.zeros(chunk - piece.size, np.float32)])
        af = av.AudioFrame.from_ndarray(piece[None, :], format="fltp", layout="mono")
        af.sample_rate = rate
        af.pts = sent
        af.time_base = Fraction(1, rate)
        for packet in stream.encode(af):
            container.mux(packet)
        sent += chunk
    return sent
