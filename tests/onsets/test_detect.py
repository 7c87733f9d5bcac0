"""Strike onsets found in the picture alone, scored against the world's ground-truth contact times."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from physdiff.errors import DataError
from physdiff.onsets import DetectorSettings, detect_onsets
from physdiff.onsets.evaluate import match, score_video, summarise, truth_events


def _score(video: Path, physics: Path) -> dict:
    onsets = detect_onsets(video)
    truth, fps = truth_events(physics)
    return summarise([score_video(onsets, truth, fps)])["all"]


def test_world_strikes_found_within_one_frame(onset_world: Path) -> None:
    scores = []
    for video in sorted(onset_world.glob("*_denoised.mp4")):
        onsets = detect_onsets(video)
        truth, fps = truth_events(video.with_name(video.name.replace("_denoised.mp4", "_physics.json")))
        assert all(0.0 <= o.confidence <= 1.0 for o in onsets)
        assert all(o.frame == int(np.floor(o.time_s * fps + 1e-6)) for o in onsets)
        assert [o.time_s for o in onsets] == sorted(o.time_s for o in onsets)
        scores.append(score_video(onsets, truth, fps))
    s = summarise(scores)["all"]
    # 16 events: one miss costs 0.06 of recall, so the bars sit below issue 17's 0.9, which
    # bench/onsets.py measures on 480 events per frame size
    assert s["events"] == 16
    assert s["recall"] >= 0.8, s
    assert s["precision"] >= 0.85, s
    assert s["median_ms"] <= 17.0, s


def test_224_px_h264_aac_clip(video_224: tuple[Path, Path]) -> None:
    import av

    video, physics = video_224
    with av.open(str(video)) as c:  # the file really is what a user would bring
        assert c.streams.video[0].codec_context.name == "h264"
        assert (c.streams.video[0].width, c.streams.video[0].height) == (224, 224)
        assert c.streams.audio[0].codec_context.name == "aac"
    s = _score(video, physics)
    assert s["recall"] >= 0.75 and s["precision"] >= 0.75, s  # 8 events: one miss is 0.125
    assert s["median_ms"] <= 17.0, s


def test_sub_frame_timing_beats_frame_rounding(onset_world: Path) -> None:
    """The line-intersection estimate is closer to the contact than the start of its frame (what a frame-level detector gives)."""
    ours, rounded = [], []
    for video in sorted(onset_world.glob("*_denoised.mp4")):
        onsets = detect_onsets(video)
        truth, fps = truth_events(video.with_name(video.name.replace("_denoised.mp4", "_physics.json")))
        for i, j in match([o.time_s for o in onsets], [e.time_s for e in truth], fps):
            ours.append(abs(onsets[i].time_s - truth[j].time_s))
            rounded.append(abs(onsets[i].frame / fps - truth[j].time_s))
    assert len(ours) >= 12
    assert np.median(ours) < 0.5 * np.median(rounded), (np.median(ours), np.median(rounded))


def _write_static_clip(path: Path, seconds: float = 3.0, size: int = 64) -> None:
    """A still textured picture with sensor noise (and an AAC track of silence): nothing moves."""
    from fractions import Fraction

    from physdiff.world.media import write_mp4

    rng = np.random.default_rng(0)
    base = rng.uniform(40, 215, (size, size, 3))
    fps = Fraction(30000, 1001)
    n = int(seconds * float(fps))
    frames = (np.clip(base + rng.normal(0, 2.0, (size, size, 3)), 0, 255).astype(np.uint8) for _ in range(n))
    write_mp4(path, frames, size, fps, np.zeros(int(seconds * 48000), np.float32), 48000, 48000, 20, "veryfast")


def test_static_video_says_no_strike(tmp_path: Path) -> None:
    from physdiff.onsets.resolve import resolve_onsets

    clip = tmp_path / "still.mp4"
    _write_static_clip(clip)
    with pytest.raises(DataError, match=r"no strike detected in .*still\.mp4"):
        detect_onsets(clip)
    with pytest.raises(DataError, match=r"no strike detected in .*still\.mp4"):
        resolve_onsets(clip, "auto")
    assert detect_onsets(clip, require=False) == []


def test_corrupt_and_missing_videos_are_one_line_errors(tmp_path: Path, onset_world: Path) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(sorted(onset_world.glob("*_denoised.mp4"))[0].read_bytes()[:1500])
    for bad in (garbage, truncated, tmp_path / "missing.mp4"):
        with pytest.raises(DataError) as e:
            detect_onsets(bad)
        msg = str(e.value)
        assert str(bad) in msg and "\n" not in msg, msg


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="min_confidence"):
        DetectorSettings(min_confidence=2.0).validate()
    from physdiff.onsets.track import motion_track
    import torch
    from fractions import Fraction

    with pytest.raises(ValueError, match="direction"):
        motion_track(torch.zeros(8, 64, 64, 3), Fraction(30), direction="sideways")


def test_command_line_prints_and_writes_a_times_file(onset_world: Path, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from physdiff.onsets.resolve import read_onset_file

    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    video = sorted(onset_world.glob("*_denoised.mp4"))[0]
    out = tmp_path / "onsets.txt"
    r = subprocess.run([sys.executable, "-m", "physdiff.onsets", str(video), "--out", str(out)], capture_output=True,
                       text=True, env=env, cwd=repo, timeout=300)
    assert r.returncode == 0, r.stderr
    expected = [o.time_s for o in detect_onsets(video)]
    assert read_onset_file(out) == pytest.approx(expected, abs=1e-6)
    assert f"{len(expected)} strikes in {video}" in r.stdout
    clip = tmp_path / "still.mp4"
    _write_static_clip(clip)
    r = subprocess.run([sys.executable, "-m", "physdiff.onsets", str(clip)], capture_output=True, text=True, env=env,
                       cwd=repo, timeout=300)
    assert r.returncode == 2 and r.stderr.startswith("error: no strike detected in") and str(clip) in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
