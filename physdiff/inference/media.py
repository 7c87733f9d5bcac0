"""Media around generation: the frames at each onset, onset lists, soundtracks, muxing and figures.

    vc = clip_frames("clip.mp4", [0.5, 1.2], num_frames=22, size=64)   # (B, T, 3, S, S) uint8 around each onset
    track = place_clips(audio, onsets, sample_rate, length)             # clips added at their onsets
    mux_soundtrack("clip.mp4", track, sample_rate, "out/clip_generated.mp4")

Bad input is a :class:`physdiff.errors.DataError` naming the file: an unreadable video, a video shorter
than the 22 frames the visual encoder needs around an onset, an onset before 0 or past the end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from physdiff.errors import DataError
from physdiff.fileio import atomic_output


@dataclass
class VideoClips:
    """The frames around each onset of one video: ``frames`` (B, T, 3, S, S) uint8."""

    path: Path
    fps: Fraction
    num_frames: int
    onsets: list[float]
    onset_frames: list[int]
    clamped: list[int]  # frames of each window repeated because it ran past an end of the video
    frames: Tensor

    @property
    def duration(self) -> float:
        return self.num_frames / float(self.fps)


def clip_frames(path: str | Path, onsets: Sequence[float], num_frames: int = 22, size: int = 64) -> VideoClips:
    """Decode the ``num_frames`` frames around every onset (onset frame - n//2 .. + n - n//2 - 1), once.

    Windows that run past an end of the video repeat its first / last frame, exactly as the shards do
    (``physdiff.data.build``); how many were repeated is reported per clip. A video with fewer frames than
    one window, an onset before 0 or past the end, or an unreadable file is a DataError naming the file.
    """
    from physdiff.data import media

    path = Path(path)
    if not path.is_file():
        raise DataError(f"video not found: {path}")
    if not onsets:
        raise DataError(f"no onsets given for {path}")
    bad = [t for t in onsets if not (math.isfinite(t) and t >= 0)]
    if bad:
        raise DataError(f"onsets must be finite and >= 0 seconds; got {bad[:3]} for {path}")
    fps = media.video_fps(path)  # DataError "unreadable video" for a corrupt file
    f0s = [media.onset_frame(t, fps) for t in onsets]
    vf = media.decode_frames(path, media.window_wanted(f0s, num_frames), size)
    if vf.num_frames < num_frames:
        raise DataError(f"video {path} holds {vf.num_frames} frames ({vf.num_frames / float(vf.fps):.2f} s), shorter "
                        f"than the {num_frames} frames the visual encoder needs around an onset")
    late = [(t, f0) for t, f0 in zip(onsets, f0s) if f0 >= vf.num_frames]
    if late:
        t, f0 = late[0]
        raise DataError(f"onset {t:.3f} s is past the end of video {path} ({vf.num_frames} frames = "
                        f"{vf.num_frames / float(vf.fps):.3f} s at {float(vf.fps):.3f} fps)")
    clips, clamped = [], []
    for f0 in f0s:
        idx, n_clamped = media.frame_window(f0, num_frames, vf.num_frames)  # clamped at the ends, as the shards
        clamped.append(n_clamped)
        clips.append(np.stack([vf.frames[i] for i in idx]).transpose(0, 3, 1, 2))  # (T, 3, S, S)
    frames = torch.from_numpy(np.stack(clips))  # (B, T, 3, S, S) uint8
    return VideoClips(path, vf.fps, vf.num_frames, list(onsets), f0s, clamped, frames)


def read_onsets(path: str | Path) -> list[float]:
    """Onset times (seconds) from a file: Greatest Hits ``time material action reaction`` lines or one time per line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read onsets {path}: {e}") from None
    out = []
    for n, line in enumerate(lines, 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        tok = s.split()[0].rstrip(",")
        try:
            t = float(tok)
        except ValueError:
            raise DataError(f"{path}:{n}: onset {tok!r} is not a number of seconds") from None
        out.append(t)
    if not out:
        raise DataError(f"no onsets in {path}")
    return out


def parse_onsets(text: str) -> list[float]:
    """``"0.5,1.2 2.0"`` -> [0.5, 1.2, 2.0] (commas or spaces). DataError on anything that is not seconds."""
    toks = [t for t in text.replace(",", " ").split() if t]
    try:
        out = [float(t) for t in toks]
    except ValueError:
        raise DataError(f"--onsets must be 'auto' or numbers of seconds separated by commas, got {text!r}") from None
    if not out:
        raise DataError("--onsets is empty: give 'auto' or times in seconds such as 0.5,1.2")
    return out


def place_clips(clips: Tensor, onsets: Sequence[float], sample_rate: int, length: int, gain: float = 0.9) -> np.ndarray:
    """A soundtrack (length,) with clip i added at ``round(onset_i * sr)`` (cut at the end), peak <= ``gain``."""
    track = np.zeros(length, dtype=np.float64)
    for clip, t in zip(clips.double().cpu().numpy(), onsets):
        s = int(round(t * sample_rate))
        n = max(0, min(clip.shape[0], length - s))
        track[s : s + n] += gain * clip[:n]
    peak = float(np.abs(track).max()) if track.size else 0.0
    if peak > gain:  # overlapping clips: scale the whole track, never clip it
        track *= gain / peak
    return track.astype(np.float32)


def mux_soundtrack(video_path: str | Path, audio: np.ndarray, sample_rate: int, out_path: str | Path,
                   bitrate: int = 128000) -> Path:
    """The original video stream (packets copied, no re-encode) + ``audio`` (mono float) as an AAC track."""
    import av

    video_path, out_path = Path(video_path), Path(out_path)
    try:
        with atomic_output(out_path) as tmp, av.open(str(video_path)) as src, \
                av.open(str(tmp), mode="w", format="mp4") as dst:
            if not src.streams.video:
                raise DataError(f"no video stream in {video_path}")
            vin = src.streams.video[0]
            vout = dst.add_stream_from_template(vin)
            aout = dst.add_stream("aac", rate=sample_rate)
            aout.codec_context.layout = "mono"
            aout.codec_context.bit_rate = bitrate
            # Encode the audio first (small), then interleave its packets with the copied video by time.
            apkts = []
            chunk = 1024 * 16
            for s in range(0, audio.shape[0], chunk):
                piece = np.ascontiguousarray(audio[s : s + chunk], dtype=np.float32)[None, :]  # (1, n)
                fr = av.AudioFrame.from_ndarray(piece, format="fltp", layout="mono")
                fr.sample_rate = sample_rate
                fr.pts = s
                fr.time_base = Fraction(1, sample_rate)
                apkts += list(aout.encode(fr))
            apkts += list(aout.encode(None))
            ai = 0
            for pkt in src.demux(vin):
                if pkt.dts is None:  # the demuxer's final flush packet
                    continue
                t = float(pkt.dts * pkt.time_base)
                while ai < len(apkts) and apkts[ai].dts is not None and float(apkts[ai].dts * apkts[ai].time_base) <= t:
                    dst.mux(apkts[ai])
                    ai += 1
                pkt.stream = vout
                dst.mux(pkt)
            for p in apkts[ai:]:
                dst.mux(p)
    except av.error.FFmpegError as e:
        raise DataError(f"could not write {out_path} from {video_path}: {e}") from e
    return out_path


def comparison_figure(path: str | Path, generated: Tensor, truth: Tensor | None, labels: Sequence[str],
                      title: str = "", audio_cfg: Any = None) -> Path:
    """Every clip's normalised log-magnitude spectrogram, one row per clip: generated | ground truth (when given).

    Time (s) and frequency (kHz) axes when ``audio_cfg`` is given (else frames and bins), one shared colour bar
    of the normalised log-magnitude scale.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = generated.shape[0]
    cols = 1 if truth is None else 2
    f_bins, n_frames = generated.shape[-2], generated.shape[-1]
    if audio_cfg is not None:
        extent = (0.0, (n_frames - 1) * audio_cfg.hop_length / audio_cfg.sample_rate, 0.0, audio_cfg.sample_rate / 2000.0)
        xlabel, ylabel = "time (s)", "frequency (kHz)"
    else:
        extent, xlabel, ylabel = (0, n_frames, 0, f_bins), "frame", "bin"
    fig, axes = plt.subplots(n, cols, figsize=(3.4 * cols + 0.8, 1.9 * n + 0.7), squeeze=False)
    im = None
    for i in range(n):
        panels = [(generated[i, 0], "generated")] + ([] if truth is None else [(truth[i, 0], "ground truth")])
        for j, (x, name) in enumerate(panels):
            ax = axes[i][j]
            im = ax.imshow(x.float().cpu().numpy(), origin="lower", aspect="auto", cmap="magma", vmin=-1, vmax=1,
                           extent=extent)
            ax.set_title(f"{labels[i]}: {name}", fontsize=8)
            ax.tick_params(labelsize=6)
            if i == n - 1:
                ax.set_xlabel(xlabel, fontsize=7)
            if j == 0:
                ax.set_ylabel(ylabel, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 0.86, 1))
    if im is not None:
        cax = fig.add_axes((0.88, 0.15, 0.02, 0.7))
        fig.colorbar(im, cax=cax).set_label("normalised log-magnitude", fontsize=7)
    path = Path(path)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def ground_truth_clips(wav: str | Path, onsets: Sequence[float], audio_cfg: Any) -> Tensor:
    """Recorded clips (B, T) cut at the onsets from a wav (resampled to ``audio.sample_rate``)."""
    from physdiff.data.media import cut_clip, load_audio

    audio = load_audio(wav, audio_cfg.sample_rate)  # (N,)
    return torch.from_numpy(np.stack([cut_clip(audio, int(round(t * audio_cfg.sample_rate)), audio_cfg.num_samples)
                                      for t in onsets]))  # (B, T)


def sibling_wav(video: Path) -> Path | None:
    """The recording beside a video in the Greatest Hits layout (``<id>_denoised.mp4`` -> ``<id>_denoised.wav``)."""
    for cand in (video.with_suffix(".wav"), video.with_name(video.name.replace("_denoised_thumb.mp4", "_denoised.wav"))):
        if cand.is_file() and cand != video:
            return cand
    return None
