"""``physdiff generate --onsets auto`` end to end: the real command finds the strikes, and the detected onsets
drive the real generation path (trained debug runs), on a world video and on a 224 px H.264 / AAC mp4."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from physdiff.onsets.resolve import resolve_onsets
from tests.stages.trained_runs import train_upstream


REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def synth(debug_data: dict) -> Path:
    """The trained debug 'ours' run (with its index) that the command loads."""
    return train_upstream(debug_data, ("ours",))["diffusion"]["ours"]


def _generate(run: Path, video: Path, out: Path) -> tuple[dict, object]:
    """``physdiff generate --onsets auto`` as a user runs it; returns (generation.json, the detector's onsets)."""
    p = subprocess.run([sys.executable, "-m", "physdiff", "generate", "--video", str(video), "--onsets", "auto",
                        "--run-from", str(run), "--steps", "2", "--out", str(out), "--no-progress"],
                       capture_output=True, text=True, timeout=300, cwd=REPO, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    resolved = resolve_onsets(video, "auto")  # the same detector, in this process: the same onsets
    assert resolved.source == "detected" and resolved.times and "strikes found" in p.stdout
    return json.loads((out / "generation.json").read_text()), resolved


@pytest.mark.slow
def test_generate_auto_on_a_world_video_and_a_224_px_clip(synth, onset_world: Path, video_224: tuple[Path, Path],
                                                          tmp_path: Path) -> None:
    from physdiff.onsets.evaluate import match, truth_events

    world_video = sorted(onset_world.glob("*_denoised.mp4"))[1]
    for video, physics in ((world_video, world_video.with_name(world_video.name.replace("_denoised.mp4", "_physics.json"))),
                           video_224):
        out = tmp_path / video.stem
        summary, resolved = _generate(synth, video, out)
        # one clip per detected onset, at the detected time, and the detections are the annotated strikes
        # (to the microsecond: a detection run in another process may sum its motion energy in another order)
        assert [c["onset"] for c in summary["clips"]] == pytest.approx(resolved.times, abs=1e-6)
        assert all((out / c["wav"]).is_file() for c in summary["clips"])
        truth, fps = truth_events(physics)
        pairs = match(resolved.times, [e.time_s for e in truth], fps)
        assert len(pairs) >= 0.75 * len(truth) and len(pairs) >= 0.75 * len(resolved.times), (resolved.times, truth)
        # the soundtrack is the clips, each added at its detected onset sample: silent before the first
        # strike, and rebuilt from the clip WAVs it matches (a clip at the wrong time would not)
        track, sr = sf.read(str(out / "soundtrack.wav"))
        starts = [round(t * sr) for t in resolved.times]
        assert np.abs(track[: starts[0]]).max() == 0.0
        expected = np.zeros_like(track)
        for c, st in zip(summary["clips"], starts):
            x, _ = sf.read(str(out / c["wav"]))
            seg = expected[st: st + x.shape[0]]
            seg += x[: seg.shape[0]]
        gain = float(track @ expected / (expected @ expected))
        assert 0.1 < gain <= 1.0 and np.abs(track - gain * expected).max() < 2e-3
        # generation.json records where the onsets came from, with the detector's confidence of each
        rec = summary["onsets"]
        assert rec["source"] == "detected" and rec["times"] == pytest.approx(resolved.times, abs=2e-6)  # rounded to 1 us
        assert [c["confidence"] for c in summary["clips"]] == rec["confidences"]
        assert len(rec["confidences"]) == len(rec["times"]) and all(0.5 <= c <= 1 for c in rec["confidences"])
        assert (out / "generation.json").is_file() and (out / summary["mp4"]).is_file()


def test_explicit_onsets_and_times_override_auto(onset_world: Path, tmp_path: Path) -> None:
    from physdiff.errors import DataError

    video = sorted(onset_world.glob("*_denoised.mp4"))[0]
    times_file = video.with_name(video.name.replace("_denoised.mp4", "_times.txt"))
    r = resolve_onsets(video, "0.5, 1.25")
    assert (r.times, r.source, r.confidences) == ([0.5, 1.25], "onsets", [None, None])
    times, source, conf = resolve_onsets(video, "auto", times=times_file)  # a file wins over auto
    expected = [float(line.split()[0]) for line in times_file.read_text().splitlines() if line.strip()]
    assert (times, source) == (expected, "times") and conf == [None] * len(expected)
    assert resolve_onsets(video, [0.7]).times == [0.7]
    auto = resolve_onsets(video)  # the default is the detector
    assert auto.source == "detected" and len(auto.confidences) == len(auto.times) > 0
    assert auto.to_json()["detector"]["onsets"][0]["frame"] == auto.detected[0].frame
    with pytest.raises(DataError, match="--onsets must be 'auto' or numbers"):
        resolve_onsets(video, "soon")
    bad = tmp_path / "t.txt"
    bad.write_text("0.5 wood hit static\nlater\n")
    with pytest.raises(DataError, match=r"t\.txt:2"):
        resolve_onsets(video, times=bad)
