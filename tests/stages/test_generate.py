"""Generation from silent video: WAVs, a soundtrack with each clip at its onset, an MP4 carrying it, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.stages.trained_runs import config, overrides, train_upstream

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def runs(debug_data: dict) -> dict:
    return train_upstream(debug_data, ("ours",))


def _world_video(debug_data: dict) -> tuple[Path, list[float]]:
    """A generated-world video with its annotated onsets (every line of its times file)."""
    from physdiff.inference.media import read_onsets

    world = Path(debug_data["world"])
    times = sorted(world.glob("*_times.txt"))[0]
    return world / times.name.replace("_times.txt", "_denoised.mp4"), read_onsets(times)


def _decode_audio(path: Path) -> tuple[np.ndarray, int, int]:
    """(mono samples, sample rate, video frames) of an MP4, decoded with PyAV."""
    import av

    with av.open(str(path)) as c:
        assert c.streams.video and c.streams.audio
        rate = c.streams.audio[0].codec_context.sample_rate
        x = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(c.streams.audio[0])])
    with av.open(str(path)) as c:
        frames = sum(1 for _ in c.decode(c.streams.video[0]))
    return x.astype(np.float64), rate, frames


def test_generate_writes_clips_soundtrack_and_mp4_with_audio_at_the_onsets(debug_data: dict, runs: dict,
                                                                           tmp_path: Path) -> None:
    import dataclasses

    from physdiff.data.media import video_fps
    from physdiff.inference.generate import generate_video
    from physdiff.inference.synthesizer import Synthesizer

    cfg = config(debug_data)
    video, onsets = _world_video(debug_data)
    synth = Synthesizer.from_run(runs["diffusion"]["ours"])
    opts = dataclasses.replace(cfg.sampling, sampler="ddim", steps=2, eta=0.0, batch_size=3)
    s = generate_video(synth, video, onsets, tmp_path, opts, progress=False)
    sr = cfg.audio.sample_rate
    # One WAV per event at the configured rate and clip length, each clip retrieved from a training clip.
    assert len(s["clips"]) == len(onsets)
    for c in s["clips"]:
        x, rate = sf.read(tmp_path / c["wav"])
        assert rate == sr and x.shape == (cfg.audio.num_samples,) and np.abs(x).max() > 0.5
        assert c["retrieved"] and c["retrieval_distance"] >= 0
    # The soundtrack spans the video and each clip starts exactly at its onset sample.
    with __import__("av").open(str(video)) as cont:
        n_frames = cont.streams.video[0].frames
    duration = n_frames / float(video_fps(video))
    track, rate = sf.read(tmp_path / "soundtrack.wav")
    assert rate == sr and track.shape[0] == round(duration * sr)
    starts = [round(t * sr) for t in onsets]
    assert np.abs(track[: starts[0]]).max() == 0.0  # silence before the first hit
    # The track is the clips themselves, each added at its onset sample (one gain for all): rebuild it
    # from the WAVs on disk and compare; a clip one sample early or late would leave a large residual.
    expected = np.zeros_like(track)
    for c, st in zip(s["clips"], starts):
        x, _ = sf.read(tmp_path / c["wav"])
        seg = expected[st : st + x.shape[0]]
        seg += x[: seg.shape[0]]
    gain = float(track @ expected / (expected @ expected))
    assert 0.1 < gain <= 1.0
    assert np.abs(track - gain * expected).max() < 2e-3, "a clip is not at its onset sample"
    for st in starts:
        assert np.abs(track[st : st + sr // 100]).max() > 0.0  # sound from the onset on
    # The MP4: the original video frames, and an AAC track of the soundtrack's length, aligned with it.
    audio, arate, frames = _decode_audio(tmp_path / s["mp4"])
    assert arate == sr and frames == n_frames
    assert track.shape[0] <= audio.shape[0] <= track.shape[0] + 2048  # AAC pads its last frame
    n = track.shape[0]
    lags = range(-80, 81)  # +- 5 ms
    cc = [float(np.dot(audio[max(0, l) : n + min(0, l)], track[max(0, -l) : n - max(0, l)])) for l in lags]
    assert abs(list(lags)[int(np.argmax(cc))]) <= 16  # within 1 ms
    assert np.corrcoef(audio[:n], track)[0, 1] > 0.9
    env, ref = np.abs(audio[:n]), np.abs(track)
    first, first_ref = int(np.argmax(env > 0.1 * env.max())), int(np.argmax(ref > 0.1 * ref.max()))
    assert first_ref >= starts[0] and abs(first - first_ref) <= sr // 1000  # the first hit is heard where it is placed
    assert (tmp_path / "comparison.png").stat().st_size > 0 and s["ground_truth"]
    assert json.loads((tmp_path / "generation.json").read_text())["soundtrack_samples"] == track.shape[0]


def _write_video(path: Path, frames: int, size: int = 32) -> None:
    import av

    with av.open(str(path), mode="w") as c:
        vs = c.add_stream("libx264", rate=Fraction(30000, 1001))
        vs.width = vs.height = size
        vs.pix_fmt = "yuv420p"
        for k in range(frames):
            f = av.VideoFrame.from_ndarray(np.full((size, size, 3), 8 * k % 255, np.uint8), format="rgb24")
            for p in vs.encode(f):
                c.mux(p)
        for p in vs.encode():
            c.mux(p)


def test_bad_videos_and_onsets_give_clear_errors(tmp_path: Path) -> None:
    from physdiff.errors import DataError
    from physdiff.inference.media import clip_frames, parse_onsets

    short, ok, junk = tmp_path / "short.mp4", tmp_path / "ok.mp4", tmp_path / "junk.mp4"
    _write_video(short, 12)
    _write_video(ok, 40)
    junk.write_bytes(b"this is not a video" * 100)
    with pytest.raises(DataError, match=r"short\.mp4 holds 12 frames.*shorter than the 22 frames"):
        clip_frames(short, [0.2])
    with pytest.raises(DataError, match=r"onset 5\.000 s is past the end of video .*ok\.mp4 \(40 frames"):
        clip_frames(ok, [0.5, 5.0])
    with pytest.raises(DataError, match=r"unreadable video .*junk\.mp4"):
        clip_frames(junk, [0.5])
    with pytest.raises(DataError, match="video not found"):
        clip_frames(tmp_path / "missing.mp4", [0.5])
    with pytest.raises(DataError, match=">= 0"):
        clip_frames(ok, [-1.0])
    with pytest.raises(DataError, match="--onsets"):
        parse_onsets("0.5,abc")
    # A window that runs past an end repeats the end frame, as the shards do, and says how many.
    vc = clip_frames(ok, [0.0, 1.3])
    assert vc.frames.shape == (2, 22, 3, 64, 64) and vc.frames.dtype == torch.uint8
    assert vc.clamped == [11, 10 - (40 - 1 - vc.onset_frames[1])]
    # The command prints one error line and exits 2.
    p = subprocess.run([sys.executable, str(REPO / "cluster" / "generate.py"), "--video", str(junk), "--onsets", "0.5",
                        "--out", str(tmp_path / "o"), "--preset", "debug"], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, OMP_NUM_THREADS="1"), cwd=REPO)
    assert p.returncode == 2 and p.stderr.strip().splitlines()[-1].startswith("error: unreadable video")


def test_generate_stage_renders_every_test_video(debug_data: dict, runs: dict) -> None:
    from physdiff.stages.generate import run_generate

    cfg = config(debug_data)
    s = run_generate(cfg, progress=False)
    out = Path(s["out"])
    assert s["clips"] > 0 and (out / "DONE.json").is_file()
    for vid, folder in s["per_video"].items():
        g = json.loads((Path(folder) / "generation.json").read_text())
        assert g["ground_truth"] and g["spectrogram_mse_vs_truth"] is not None
        assert len(list(Path(folder).glob("clip_*.wav"))) == len(g["clips"]) and (Path(folder) / g["mp4"]).is_file()
    assert run_generate(cfg, progress=False)["out"] == s["out"]  # complete: skipped


def test_edit_command_changes_the_sound_both_ways(debug_data: dict, runs: dict, tmp_path: Path) -> None:
    from physdiff.artifacts import read_export
    from physdiff.cli import edit
    from physdiff.data.sidetable import read_side_table

    key = read_side_table(read_export(runs["video"], "video").table("train")).keys[0]
    assert edit.main(["--clip", key, "--edit", "mute_hz=2000,8000", "--edit", "decay_scale=0.5", "--steps", "2",
                      "--out", str(tmp_path), "--preset", "debug", *overrides(debug_data)]) == 0
    rec = json.loads((tmp_path / "edit.json").read_text())
    assert rec["clip"] == key and rec["edit"]["mute_hz"] == [[2000.0, 8000.0]] and rec["outputs"]["mu_shift"] > 0
    sr = config(debug_data).audio.sample_rate

    def share_above(x: np.ndarray, hz: float) -> float:
        power = np.abs(np.fft.rfft(x)) ** 2
        return float(power[np.fft.rfftfreq(x.size, 1 / sr) > hz].sum() / power.sum())

    before, _ = sf.read(tmp_path / "direct_before.wav")
    after, _ = sf.read(tmp_path / "direct_after.wav")
    # Modes and residual bands in 2-8 kHz are muted: the energy above 2.2 kHz all but vanishes.
    assert share_above(after, 2200.0) < 0.2 * share_above(before, 2200.0)
    for name in ("diffusion_before.wav", "diffusion_after.wav", "direct_spectrogram.png", "diffusion_spectrogram.png"):
        assert (tmp_path / name).stat().st_size > 0
