"""The world's files: Greatest Hits layout, decodable media, parseable annotations, determinism."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from physdiff.data.labels import ACTIONS, GREATEST_HITS_MATERIALS, UNKNOWN
from physdiff.errors import PhysdiffError
from physdiff.world import WorldConfig, generate_world

from .conftest import SMALL

REPO = Path(__file__).resolve().parents[2]
ID_RE = re.compile(r"^\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}$")


def _ids(out: Path) -> list[str]:
    return (out / "train.txt").read_text().split() + (out / "test.txt").read_text().split()


def test_layout_and_split(small_world):
    out, world, summary = small_world
    train, test = (out / "train.txt").read_text().split(), (out / "test.txt").read_text().split()
    assert len(train) == 1 and len(test) == 1 and not set(train) & set(test)
    assert summary["videos"] == 2 and summary["events"] == 6
    for vid in train + test:
        assert ID_RE.match(vid), vid
        for suffix in ("_denoised.mp4", "_denoised.wav", "_times.txt", "_physics.json"):
            assert (out / f"{vid}{suffix}").is_file()
    assert (out / "sites.json").is_file() and summary["sites"] == world.sites
    assert summary["bytes"] == sum(p.stat().st_size for p in out.glob("*_*"))


def test_media_decode(small_world):
    out, world, _ = small_world
    for vid in _ids(out):
        truth = json.loads((out / f"{vid}_physics.json").read_text())
        with av.open(str(out / f"{vid}_denoised.mp4")) as c:
            vs = c.streams.video[0]
            assert vs.codec_context.name == "h264"
            assert vs.average_rate == Fraction(30000, 1001)
            assert c.streams.audio and c.streams.audio[0].codec_context.name == "aac"
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        assert len(frames) == truth["frames"]
        assert frames[0].shape == (world.size, world.size, 3)
        audio, sr = sf.read(str(out / f"{vid}_denoised.wav"))
        info = sf.info(str(out / f"{vid}_denoised.wav"))
        assert sr == 96000 and audio.ndim == 1 and info.subtype == "FLOAT"
        assert abs(audio.size / sr - truth["duration_s"]) < 1e-3
        assert 0.01 < np.abs(audio).max() <= 0.5 + 1e-6  # scaled down to a 0.5 peak at most, not silent


def test_annotations_parse(small_world):
    out, _, summary = small_world
    n = 0
    for vid in _ids(out):
        truth = json.loads((out / f"{vid}_physics.json").read_text())
        lines = (out / f"{vid}_times.txt").read_text().splitlines()
        times = []
        for line, ev in zip(lines, truth["events"], strict=True):
            t, material, action, reaction = line.split(" ")
            assert material in GREATEST_HITS_MATERIALS or material == UNKNOWN
            assert action in ACTIONS and reaction
            assert abs(float(t) - ev["time"]) < 1e-6 and material == ev["label"]
            assert len(ev["modes"]["freq_hz"]) == len(ev["modes"]["power_db"]) == len(ev["modes"]["decay_db_s"]) > 5
            times.append(float(t))
            n += 1
        assert np.all(np.diff(times) >= 0.1)
    assert n == summary["events"]


def test_deterministic_and_worker_independent(small_world, tmp_path):
    out, world, _ = small_world
    again = tmp_path / "again"
    generate_world(again, WorldConfig(**SMALL, workers=2), 0, progress=False)
    for vid in _ids(out):
        for suffix in ("_denoised.wav", "_times.txt", "_physics.json", "_denoised.mp4"):
            assert (out / f"{vid}{suffix}").read_bytes() == (again / f"{vid}{suffix}").read_bytes(), suffix
    for name in ("train.txt", "test.txt", "sites.json"):
        assert (out / name).read_bytes() == (again / name).read_bytes(), name
    other = tmp_path / "other"
    generate_world(other, WorldConfig(videos=1, hits_per_video=3, size=32), 1, progress=False)
    assert (other / "train.txt").read_text() != (out / "train.txt").read_text()


def test_refuses_non_empty(small_world):
    out, world, _ = small_world
    with pytest.raises(PhysdiffError, match="not empty"):
        generate_world(out, world, 0, progress=False)


def test_cli_writes_config_and_caches(tmp_path):
    out = tmp_path / "cli"
    cmd = [sys.executable, str(REPO / "shards" / "synth.py"), "--out", str(out), "--videos", "1",
           "--hits-per-video", "2", "--seed", "5", "--preset", "debug", "--no-progress"]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["world"]["videos"] == 1 and cfg["world"]["size"] == 32 and cfg["world"]["seed"] == 5
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0 and "cached" in second.stdout
    third = subprocess.run(cmd[:-1] + ["--seed", "6"], capture_output=True, text=True, timeout=120)
    assert third.returncode == 2 and third.stderr.startswith("error:") and "not empty" in third.stderr


def test_same_bytes_from_fresh_processes(tmp_path):
    """Two separate runs of the entry point write identical files (all but the run summary, which names its folder
    and timings), the mp4 included (x264 with its
    macroblock-tree lookahead on made the bitstream differ between processes on identical frames)."""
    outs = []
    for name in ("a", "b"):
        out = tmp_path / name
        cmd = [sys.executable, str(REPO / "shards" / "synth.py"), "--out", str(out), "--videos", "2",
               "--hits-per-video", "3", "--size", "96", "--seed", "2", "--preset", "debug", "--no-progress"]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        outs.append(out)
    names = sorted(f.name for f in outs[0].iterdir() if f.is_file() and f.name not in ("config.json", "summary.json"))
    assert any(n.endswith(".mp4") for n in names)
    assert names == sorted(f.name for f in outs[1].iterdir() if f.is_file() and f.name not in ("config.json", "summary.json"))
    for n in names:
        assert (outs[0] / n).read_bytes() == (outs[1] / n).read_bytes(), n
