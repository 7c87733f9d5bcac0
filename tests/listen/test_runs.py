"""Reading generate-run folders (the generate stage's output contract), and what is refused or skipped."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from physdiff.errors import DataError
from physdiff.listen.runs import read_generate_run
from tests.listen.fixtures import make_generate_run


def test_reads_the_contract(listen_runs: dict) -> None:
    run = read_generate_run(listen_runs["runs"]["ours"])
    assert run.variant == "ours" and run.diffusion_run == "/runs/diffusion-ours" and not run.skipped
    assert sorted(run.videos) == ["vid_0000", "vid_0001", "vid_0002", "vid_0099"]
    v = run.videos["vid_0001"]
    assert v.mp4 == listen_runs["runs"]["ours"] / "vid_0001" / "vid_0001_generated.mp4" and v.mp4.is_file()
    assert v.source_video == listen_runs["sources"]["vid_0001"]["video"]
    assert v.ground_truth == listen_runs["sources"]["vid_0001"]["wav"] and v.num_clips == 1


def test_a_moved_run_and_relative_folders_still_resolve(listen_runs: dict, tmp_path: Path) -> None:
    src = {k: listen_runs["sources"][k] for k in ("vid_0000",)}
    a = make_generate_run(tmp_path / "a" / "generate-x", "video", src)  # absolute per_video paths
    moved = tmp_path / "elsewhere" / "generate-x"
    moved.parent.mkdir()
    shutil.move(a, moved)
    run = read_generate_run(moved)
    assert run.videos["vid_0000"].folder == moved / "vid_0000" and not run.skipped
    b = make_generate_run(tmp_path / "b", "video", src, absolute_paths=False)
    assert read_generate_run(b).videos["vid_0000"].folder == b / "vid_0000"


def test_the_variant_comes_from_generation_json_when_done_json_lacks_it(listen_runs: dict, tmp_path: Path) -> None:
    run = make_generate_run(tmp_path / "r", "video_label", {"vid_0000": listen_runs["sources"]["vid_0000"]})
    done = json.loads((run / "DONE.json").read_text())
    del done["variant"]  # the generate stage's summary before the contract named it
    (run / "DONE.json").write_text(json.dumps(done))
    assert read_generate_run(run).variant == "video_label"


def test_a_broken_video_folder_is_skipped_with_its_reason(listen_runs: dict, tmp_path: Path) -> None:
    src = {k: listen_runs["sources"][k] for k in ("vid_0000", "vid_0001")}
    run = make_generate_run(tmp_path / "r", "ours", src)
    (run / "vid_0001" / "vid_0001_generated.mp4").unlink()
    r = read_generate_run(run)
    assert list(r.videos) == ["vid_0000"]
    assert "no muxed video" in r.skipped["vid_0001"] and "vid_0001_generated.mp4" in r.skipped["vid_0001"]


@pytest.mark.parametrize("damage,message", [
    ("missing", "generate run folder not found"),
    ("no_done", "is not a finished generate run (no DONE.json)"),
    ("corrupt", "unreadable generate run summary"),
    ("stage", "is not a generate run's summary (stage 'diffusion'"),
    ("empty", "lists no videos"),
])
def test_what_is_not_a_generate_run(listen_runs: dict, tmp_path: Path, damage: str, message: str) -> None:
    run = make_generate_run(tmp_path / "r", "ours", {"vid_0000": listen_runs["sources"]["vid_0000"]})
    done = run / "DONE.json"
    if damage == "missing":
        run = tmp_path / "nope"
    elif damage == "no_done":
        done.unlink()
    elif damage == "corrupt":
        done.write_text('{"stage": "gen')
    elif damage == "stage":
        done.write_text(json.dumps({"stage": "diffusion", "per_video": {"vid_0000": "vid_0000"}}))
    else:
        done.write_text(json.dumps({"stage": "generate", "per_video": {}}))
    with pytest.raises(DataError, match=None) as e:
        read_generate_run(run)
    assert message in str(e.value) and str(run) in str(e.value)
