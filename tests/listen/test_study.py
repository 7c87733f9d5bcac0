"""Building a study folder: common videos, media copied in and blinded, blocks and the ablation, the
reference recording, per-participant randomisation, and every refusal as one clear message."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from physdiff.errors import DataError, PhysdiffError
from physdiff.listen.media import sha256_file
from physdiff.listen.study import create_study, load_study, participant_plan
from tests.listen.fixtures import RECORDING_RATE, make_generate_run


def _runs(listen_runs: dict, *names: str) -> list[tuple[str, Path]]:
    return [(n, listen_runs["runs"][n]) for n in names]


def quiet(msg: str) -> None:
    pass


def test_items_media_and_blocks(listen_runs: dict, tmp_path: Path) -> None:
    names = ("ours", "video", "video_label", "video_spec")
    study = create_study(tmp_path / "s", [(None, p) for _, p in _runs(listen_runs, *names)], seed=1, log=quiet)
    assert [m.name for m in study.methods] == list(names)  # named by their runs' variants
    assert [(i.id, i.video_id) for i in study.items] == [("v000", "vid_0000"), ("v001", "vid_0001"), ("v002", "vid_0002")]
    assert "video: not generated" in study.skipped["vid_0099"]  # only the ours run has it: recorded, not silent
    assert [(b.name, b.methods) for b in study.blocks] == [("main", names), ("ablation", ("video", "video_label", "ours"))]
    assert study.ablation["block"] == "ablation"
    for it in study.items:
        for j, m in enumerate(names):
            f = study.root / "media" / it.media[m]
            assert it.media[m] == f"{it.id}/m{j}.mp4"  # the file name says nothing about the method
            src = listen_runs["runs"][m] / it.video_id / f"{it.video_id}_generated.mp4"
            assert f.read_bytes() == src.read_bytes() and it.sha256[m] == sha256_file(f)
            assert os.stat(f).st_ino == os.stat(src).st_ino  # hard-linked (same file system)
        assert it.duration == pytest.approx(30 / 29.97, abs=0.05)
    again = load_study(study.root)
    assert again.to_json() == study.to_json()
    assert (study.root / "answers.sqlite").is_file()
    assert not [p for p in study.root.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_copy_mode_and_max_videos(listen_runs: dict, tmp_path: Path) -> None:
    runs = _runs(listen_runs, "ours", "video")
    a = create_study(tmp_path / "a", runs, media_mode="copy", max_videos=2, seed=5, log=quiet)
    b = create_study(tmp_path / "b", runs, media_mode="copy", max_videos=2, seed=5, log=quiet)
    assert [i.video_id for i in a.items] == [i.video_id for i in b.items] and len(a.items) == 2  # seeded
    dropped = [v for v, why in a.skipped.items() if "--max-videos" in why]
    assert len(dropped) == 1
    f = a.root / "media" / a.items[0].media["ours"]
    src = listen_runs["runs"]["ours"] / a.items[0].video_id / f"{a.items[0].video_id}_generated.mp4"
    assert os.stat(f).st_ino != os.stat(src).st_ino and f.read_bytes() == src.read_bytes()
    assert a.ablation["block"] is None and "video_label" in a.ablation["reason"]  # ablation runs missing


def test_the_ablation(listen_runs: dict, tmp_path: Path) -> None:
    three = create_study(tmp_path / "three", _runs(listen_runs, "ours", "video", "video_label"), log=quiet)
    assert [b.name for b in three.blocks] == ["main"] and three.ablation["block"] == "main"  # the study is the ablation
    none = create_study(tmp_path / "none", _runs(listen_runs, "ours", "video", "video_label", "video_spec"),
                        ablation="none", log=quiet)
    assert [b.name for b in none.blocks] == ["main"] and none.ablation["block"] is None
    chosen = create_study(tmp_path / "chosen", _runs(listen_runs, "ours", "video", "video_spec"),
                          ablation="ours,video_spec", log=quiet)
    assert chosen.block("ablation").methods == ("ours", "video_spec")
    twice = _runs(listen_runs, "ours", "video", "video_label") + [("ours2", listen_runs["runs"]["ours"])]
    with pytest.raises(PhysdiffError, match="several runs of variant ours"):
        create_study(tmp_path / "twice", twice, log=quiet)
    with pytest.raises(PhysdiffError, match="--ablation 'ours,nope'"):
        create_study(tmp_path / "bad", _runs(listen_runs, "ours", "video"), ablation="ours,nope", log=quiet)


def _decode(path: Path) -> tuple[np.ndarray, int, list[bytes]]:
    import av

    with av.open(str(path)) as c:
        rate = c.streams.audio[0].rate
        audio = np.concatenate([f.to_ndarray().mean(axis=0) for f in c.decode(audio=0)])
    with av.open(str(path)) as c:
        video = [bytes(p) for p in c.demux(video=0) if p.size]
    return audio, rate, video


def test_the_reference_recording(listen_runs: dict, tmp_path: Path) -> None:
    import soundfile as sf
    from scipy import signal

    study = create_study(tmp_path / "s", _runs(listen_runs, "ours", "video"), reference=True, log=quiet)
    assert study.methods[-1].name == "recording" and study.methods[-1].kind == "recording"
    it = study.items[0]
    ref_audio, rate, ref_video = _decode(study.root / "media" / it.media["recording"])
    _, _, gen_video = _decode(study.root / "media" / it.media["ours"])
    assert ref_video == gen_video  # every method's copy shows the identical picture (packets copied)
    truth, sr = sf.read(listen_runs["sources"][it.video_id]["wav"])
    assert sr == RECORDING_RATE
    truth = signal.resample_poly(truth, rate, sr)
    n = min(truth.size, ref_audio.size) - 2048
    # AAC has an encoder delay: compare at the best lag within 2048 samples.
    corr = signal.correlate(ref_audio[:n], truth[:n], mode="full", method="fft")
    lag = int(np.argmax(corr)) - (n - 1)
    assert 0 <= lag < 2048
    a, b = ref_audio[lag:lag + n - 2048], truth[: n - 2048]
    assert np.corrcoef(a, b)[0, 1] > 0.95  # the recording, not a generated track
    assert 0.8 < np.abs(ref_audio).max() < 1.0  # level-matched to the generated soundtracks' 0.9 peak


def test_plans_are_random_per_participant_and_balanced(listen_runs: dict, tmp_path: Path) -> None:
    study = create_study(tmp_path / "s", _runs(listen_runs, "ours", "video", "video_label", "video_spec"), log=quiet)
    p = participant_plan(study, 7)
    assert p == participant_plan(study, 7)  # seeded: the same participant seed gives the same plan
    assert p != participant_plan(study, 8)
    assert sorted((s.block, s.item) for s in p) == sorted((b.name, i.id) for b in study.blocks for i in study.items)
    for s in p:
        assert sorted(s.order) == sorted(study.block(s.block).methods) and s.position == p.index(s)
    # Over many participants every method is shown first about 1/4 of the time on main screens.
    first = Counter(s.order[0] for seed in range(2000) for s in participant_plan(study, seed) if s.block == "main")
    n = sum(first.values())
    assert set(first) == {"ours", "video", "video_label", "video_spec"}
    assert all(abs(c / n - 0.25) < 0.02 for c in first.values()), first  # 6000 draws: sd 0.006


@pytest.mark.parametrize("case,message", [
    ("one_run", "needs at least 2 methods"),
    ("same_name", "two runs are named 'ours'"),
    ("reserved", "reserved for the real recording"),
    ("bad_name", "method name 'a b'"),
    ("exists", "already exists"),
    ("no_common", "no test video is common to every run"),
    ("require", "--require-play must be one of"),
])
def test_refusals(listen_runs: dict, tmp_path: Path, case: str, message: str) -> None:
    ours, video = listen_runs["runs"]["ours"], listen_runs["runs"]["video"]
    runs, kw = [("ours", ours), ("video", video)], {}
    target = tmp_path / "s"
    if case == "one_run":
        runs = [("ours", ours)]
    elif case == "same_name":
        runs = [("ours", ours), ("ours", video)]
    elif case == "reserved":
        runs = [("recording", ours), ("video", video)]
    elif case == "bad_name":
        runs = [("a b", ours), ("video", video)]
    elif case == "exists":
        target.mkdir()
    elif case == "no_common":
        other = make_generate_run(tmp_path / "other", "video", {"vid_0099": listen_runs["sources"]["vid_0000"]})
        runs = [("ours", make_generate_run(tmp_path / "o", "ours", {"vid_0000": listen_runs["sources"]["vid_0000"]})),
                ("video", other)]
    else:
        kw = {"require_play": "twice"}
    with pytest.raises((PhysdiffError, DataError)) as e:
        create_study(target, runs, log=quiet, **kw)
    assert message in str(e.value)
    if case != "exists":
        assert not target.exists()


def test_load_study_refuses_what_is_not_a_study(listen_runs: dict, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is not a listening study"):
        load_study(tmp_path)
    study = create_study(tmp_path / "s", _runs(listen_runs, "ours", "video"), log=quiet)
    (study.root / "study.json").write_text("{")
    with pytest.raises(DataError, match="unreadable study file"):
        load_study(study.root)
    (study.root / "study.json").write_text(json.dumps({"format": "other/9"}))
    with pytest.raises(DataError, match="has format 'other/9'"):
        load_study(study.root)
