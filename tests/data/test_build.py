"""The shard writer on a small real folder: accounting, audio and frame alignment, resume, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF

from physdiff.data import media
from physdiff.data import sample as S
from physdiff.data.build import build_shards
from physdiff.errors import DataError
from tests.data.fixtures import GREY_STEP, VideoSpec, make_folder


def _samples(shard_root: Path, split: str) -> dict[str, dict[str, bytes]]:
    """All samples of a split read with plain tarfile (independent of the reader under test)."""
    man = json.loads((shard_root / split / "manifest.json").read_text())
    out: dict[str, dict[str, bytes]] = {}
    for s in man["shards"]:
        with tarfile.open(shard_root / s["name"]) as tf:
            for m in tf.getmembers():
                key, ext = m.name.split(".", 1)
                out.setdefault(key, {})[ext] = tf.extractfile(m).read()
    return out


def _count_lines(src: Path) -> int:
    return sum(1 for p in src.glob("*_times.txt") for l in p.read_text().splitlines() if l.strip())


def test_every_event_accounted_for(gh_source: Path, gh_shards) -> None:
    out, summary = gh_shards
    assert summary["annotated"] == _count_lines(gh_source) == 11
    assert summary["written"] + summary["skipped"] == summary["annotated"]
    assert summary["written"] == 8
    for split in ("train", "test"):
        man = json.loads((out / split / "manifest.json").read_text())
        assert man["written"] + len(man["skipped"]) == man["annotated"]
        assert sum(s["count"] for s in man["shards"]) == man["num_samples"] == len(_samples(out, split))
        assert man["config"]["shards"]["frame_size"] == 32
        for s in man["skipped"]:
            assert s["reason"] and s["file"] and s["line"]
    reasons = sorted(s["reason"].split(" (")[0] for s in json.loads((out / "train" / "manifest.json").read_text())["skipped"])
    assert reasons == ["onset past end of audio", "outside subset paper: action 'scratch'", "unknown material 'None'"]
    assert (out / "config.json").exists() and json.loads((out / "config.json").read_text())["shards"]["samples_per_shard"] == 2


def test_clip_audio_equals_resampled_wav_segment(gh_source: Path, gh_shards, debug_cfg) -> None:
    out, _ = gh_shards
    sr, n = debug_cfg.audio.sample_rate, debug_cfg.audio.num_samples
    checked = 0
    for split in ("train", "test"):
        for key, m in _samples(out, split).items():
            meta = json.loads(m["json"])
            x, wav_sr = sf.read(str(gh_source / f"{meta['video_id']}_denoised.wav"), dtype="float32")
            full = AF.resample(torch.from_numpy(x), wav_sr, sr).numpy()  # (N,)
            onset = int(round(meta["onset_seconds"] * sr))
            assert key == f"{meta['video_id']}_{onset}"
            want = np.zeros(n, np.float32)
            seg = full[onset : onset + n]
            want[: len(seg)] = seg
            got, got_sr = S.decode_audio(m["flac"], meta["audio_gain"])
            assert got_sr == sr and got.shape == (n,)
            np.testing.assert_allclose(got, want, atol=2.0**-23 * meta["audio_gain"] + 1e-7, rtol=0)
            modes = S.decode_npy(m["modes.npy"])
            assert modes.dtype == np.float32 and modes.shape == (3, debug_cfg.audio.n_fft // 2 + 1)
            assert np.isfinite(modes).all()
            checked += 1
    assert checked == 8


def test_frame_11_is_the_onset_frame(gh_shards, debug_cfg) -> None:
    out, _ = gh_shards
    for split in ("train", "test"):
        for key, m in _samples(out, split).items():
            meta = json.loads(m["json"])
            assert abs(meta["fps"] - 30000 / 1001) < 1e-9
            f0 = int(np.floor(meta["onset_seconds"] * 30000 / 1001))
            assert meta["onset_frame"] == f0
            frames = S.decode_frames(m["frames.mjpeg"], meta["frame_bytes"])  # (22, 32, 32, 3)
            assert frames.shape == (22, 32, 32, 3)
            for i in range(22):
                level = float(frames[i].mean())
                assert abs(level - GREY_STEP * meta["frame_indices"][i]) < 2.5, (key, i, level)
            assert meta["frame_indices"][11] == f0
            assert meta["frame_indices"] == [min(max(j, 0), 53) for j in range(f0 - 11, f0 + 11)]
            # the thumb video is preferred when present
            assert meta["source_video"].endswith("_thumb.mp4") == meta["video_id"].endswith("17-02-11")


def test_rerun_is_a_noop(gh_source: Path, gh_shards, debug_cfg) -> None:
    out, first = gh_shards
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/*.tar")}
    again = build_shards(gh_source, out, debug_cfg, workers=1)
    assert again["tasks_reused"] == again["tasks"] == first["tasks"]
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/*.tar")} == stamps
    assert again["written"] == first["written"]


def test_damaged_shard_is_rebuilt_and_other_config_refused(gh_source: Path, debug_cfg, tmp_path: Path) -> None:
    from physdiff.config import resolve_config

    out = tmp_path / "out"
    build_shards(gh_source, out, debug_cfg, workers=1)
    victim = sorted(out.glob("train/*.tar"))[0]
    victim.write_bytes(victim.read_bytes()[:1000])  # a partial copy
    s = build_shards(gh_source, out, debug_cfg, workers=1)
    assert s["tasks"] - s["tasks_reused"] == 1
    man = json.loads((out / "train" / "manifest.json").read_text())
    assert any(victim.name in e["name"] and e["bytes"] == victim.stat().st_size for e in man["shards"])
    other = resolve_config("debug", ["shards.samples_per_shard=2", "shards.shards_per_task=1", "shards.jpeg_quality=50"])
    with pytest.raises(DataError, match="another config"):
        build_shards(gh_source, out, other, workers=1)


def _broken_folder(tmp_path: Path) -> Path:
    specs = [
        VideoSpec("2015-01-01-00-00-01", ["0.400000 wood hit static", "0.900000 metal hit static"]),  # video broken below
        VideoSpec("2015-01-01-00-00-02", ["0.400000 wood hit static", "1.300000 glass hit static"]),  # wav truncated below
        VideoSpec("2015-01-01-00-00-03", ["0.400000 wood hit static", "abc wood hit static", "0.9 wood hit",
                                          "0.200000 rock hit static", "1.200000 metal hit static",
                                          "1.250000 paper hit static", "1.000000 leaf hit static"],
                  silent_until=0.5),
    ]
    src = make_folder(tmp_path / "src", specs)
    (src / "2015-01-01-00-00-01_denoised.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(3000))
    wav = src / "2015-01-01-00-00-02_denoised.wav"
    wav.write_bytes(wav.read_bytes()[: wav.stat().st_size // 3])
    (src / "2015-01-01-00-00-04_times.txt").unlink(missing_ok=True)
    (src / "2015-01-01-00-00-04_denoised.mp4").write_bytes(b"")  # a video without annotations
    return src


def test_broken_inputs_are_skipped_with_reasons(tmp_path: Path, debug_cfg) -> None:
    src = _broken_folder(tmp_path)
    out = tmp_path / "out"
    s = build_shards(src, out, debug_cfg, workers=1)
    skipped = json.loads((out / "train" / "manifest.json").read_text())["skipped"]
    by = {(k["video_id"][-2:], k["line"]): k for k in skipped}
    assert by[("01", 1)]["reason"].startswith("unreadable video") and by[("01", 2)]["file"].endswith("01_denoised.mp4")
    assert by[("02", 1)]["reason"].startswith("truncated wav") and by[("02", 2)]["file"].endswith("02_denoised.wav")
    assert by[("03", 2)]["reason"].startswith("bad times line") and by[("03", 3)]["reason"].startswith("bad times line")
    assert by[("03", 4)]["reason"] == "silent audio clip"  # 0.20 s, all zeros until 0.5 s
    assert "outside subset paper" in by[("03", 7)]["reason"]  # leaf is not a paper material
    assert s["written"] == 3  # video 03 lines 1 (0.40 s reaches the audio after 0.5 s), 5 and 6
    assert s["written"] + s["skipped"] == s["annotated"] == 11
    assert [v["reason"] for v in s["skipped_videos"]] == ["missing times file"]


def test_strict_names_the_file(tmp_path: Path, debug_cfg) -> None:
    src = _broken_folder(tmp_path)
    (src / "2015-01-01-00-00-04_denoised.mp4").unlink()
    with pytest.raises(DataError, match=r"unreadable video .*2015-01-01-00-00-01_denoised\.mp4"):
        build_shards(src, tmp_path / "out", debug_cfg, workers=1, strict=True)


def test_cli_summary_and_strict_exit(gh_source: Path, tmp_path: Path, repo_root: Path) -> None:
    out = tmp_path / "cli"
    cmd = [sys.executable, str(repo_root / "shards/build.py"), "--source", str(gh_source), "--out", str(out),
           "--preset", "debug", "--workers", "1"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "written 8 / skipped 3 / annotated 11" in r.stdout
    bad = _broken_folder(tmp_path / "b")
    r = subprocess.run(cmd[:2] + ["--source", str(bad), "--out", str(tmp_path / "o2"), "--strict", "--preset", "debug"],
                       capture_output=True, text=True, timeout=120)
    # the first bad input found (the annotation-less video 04) is named, in one line, exit code 2
    assert r.returncode == 2 and r.stderr.startswith("error: missing times file") and "04_times.txt" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_onset_frame_rounds_down_at_the_container_rate() -> None:
    assert media.onset_frame(1.0, media.Fraction(30000, 1001)) == 29
    assert media.onset_frame(1001 / 30000, media.Fraction(30000, 1001)) == 1  # exactly on a boundary


def test_validation_split_is_carved_by_video_from_the_training_videos(tmp_path: Path) -> None:
    """shards.val_fraction: a share of train.txt's videos become the val split, by video, stable and disjoint;
    test.txt's videos never move, and every event is still written or skipped exactly once."""
    import json

    from physdiff.config import resolve_config
    from physdiff.data.layout import validation_videos
    from physdiff.world import generate_world

    cfg = resolve_config("debug", ["world.videos=10", "world.hits_per_video=3", "shards.val_fraction=0.25"])
    src = tmp_path / "world"
    generate_world(src, cfg.world, progress=False)
    train_ids = (src / "train.txt").read_text().split()
    test_ids = (src / "test.txt").read_text().split()
    s = build_shards(src, tmp_path / "out", cfg, workers=1)
    vids = {}
    for split in ("train", "val", "test"):
        man = json.loads((tmp_path / "out" / split / "manifest.json").read_text())
        keys = [k for sh in man["shards"] for k in _tar_keys(tmp_path / "out" / sh["name"])]
        vids[split] = {k.rsplit("_", 1)[0] for k in keys} | {x["video_id"] for x in man["skipped"]}
    assert vids["val"] == validation_videos(train_ids, 0.25) and len(vids["val"]) == round(0.25 * len(train_ids))
    assert vids["train"] | vids["val"] <= set(train_ids) and not vids["train"] & vids["val"]
    assert vids["test"] <= set(test_ids)  # the dataset's own test split is untouched
    assert s["written"] + s["skipped"] == s["annotated"] and s["splits"]["val"]["annotated"] > 0
    # the choice does not depend on the order the videos are listed in
    assert validation_videos(list(reversed(train_ids)), 0.25) == validation_videos(train_ids, 0.25)
    assert validation_videos(train_ids, 0.0) == set() and validation_videos(train_ids[:1], 0.5) == set()


def _tar_keys(path: Path) -> list[str]:
    with tarfile.open(path) as t:
        return sorted({m.name.split(".", 1)[0] for m in t.getmembers()})


def test_an_inline_build_gives_the_caller_its_threads_back(gh_source: Path, debug_cfg, tmp_path: Path) -> None:
    """workers=1 builds in this process (the main job's shards step): each task runs on one thread, and the
    caller's training stages afterwards get every thread back (they ran single-threaded when it did not)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        build_shards(gh_source, tmp_path / "shards", debug_cfg, workers=1)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_diffusion_only_setting_reuses_the_shards(gh_source: Path, gh_shards, debug_cfg) -> None:
    """The shard folder's identity covers world / audio / physics / shards only: a new U-Net width is no new data."""
    from physdiff.identity import shards_dir

    out, first = gh_shards
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/*.tar")}
    wider = debug_cfg.copy({"diffusion.width": debug_cfg.diffusion.width * 2})
    assert shards_dir(wider) == shards_dir(debug_cfg)
    again = build_shards(gh_source, out, wider, workers=1)  # neither refused ("another config") nor rebuilt
    assert again["tasks_reused"] == again["tasks"] == first["tasks"]
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/*.tar")} == stamps
