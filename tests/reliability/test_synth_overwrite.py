"""``synth --overwrite`` deletes only what its world manifest lists; any other file makes it refuse, naming it.

The issue's case: a real Greatest Hits folder (``myrec_denoised.mp4/.wav``, ``myrec_times.txt``,
``train.txt``, ``config.json``) matched every deletion pattern and lost all five files. Now: that folder is
refused and keeps every byte; a world physdiff wrote is replaced; a foreign file dropped into a world makes
the overwrite refuse (and nothing is deleted); a world interrupted mid-write (manifest first) can be
overwritten; the manifest lists exactly the files a finished world holds.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from physdiff.errors import PhysdiffError
from tests.reliability.conftest import REPO, env1

GH_FILES = {"myrec_denoised.mp4": b"\x00\x00\x00\x18ftypmp42 video bytes", "myrec_denoised.wav": b"RIFF recording",
            "myrec_times.txt": b"0.5 wood hit static\n", "train.txt": b"myrec\n", "config.json": b'{"mine": true}\n'}


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _debug_world_cfg(*extra: str):
    from physdiff.config import resolve_config

    return resolve_config("debug", ["world.videos=2", "world.hits_per_video=2", *extra])


def test_overwrite_refuses_a_folder_it_did_not_write_and_deletes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "greatest-hits"
    out.mkdir()
    for name, data in GH_FILES.items():
        (out / name).write_bytes(data)
    p = subprocess.run([sys.executable, "shards/synth.py", "--out", str(out), "--preset", "debug", "--overwrite",
                        "--no-progress"], cwd=REPO, env=env1(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 2, p.stderr[-2000:]
    line = p.stderr.strip().splitlines()[-1]
    assert line.startswith("error: refusing to --overwrite") and str(out / "config.json") in line, line
    assert _snapshot(out) == GH_FILES  # every file, every byte


def test_overwrite_replaces_its_own_world_but_refuses_one_with_a_foreign_file(tmp_path: Path) -> None:
    from physdiff.world.generate import WORLD_MANIFEST, ensure_world, generate_world

    out = tmp_path / "w"
    ensure_world(_debug_world_cfg(), out, progress=False)
    listed = set(__import__("json").loads((out / WORLD_MANIFEST).read_text())["files"])
    present = {p.name for p in out.iterdir()} - {WORLD_MANIFEST}
    assert present == listed, (present ^ listed)  # the manifest lists exactly what the world holds

    # Overwrite with another seed: the old videos are gone, the new ones are there, the manifest follows.
    ensure_world(_debug_world_cfg("world.seed=5"), out, overwrite=True, progress=False)
    relisted = set(__import__("json").loads((out / WORLD_MANIFEST).read_text())["files"])
    assert {p.name for p in out.iterdir()} - {WORLD_MANIFEST} == relisted and relisted != listed

    # A file the user put there stops the next overwrite; nothing at all is deleted.
    (out / "notes.txt").write_text("my notes\n")
    before = _snapshot(out)
    with pytest.raises(PhysdiffError, match=r"notes\.txt is not a file physdiff synth wrote"):
        generate_world(out, _debug_world_cfg().world, overwrite=True, progress=False)
    assert _snapshot(out) == before


def test_an_interrupted_world_can_still_be_overwritten(tmp_path: Path) -> None:
    """The manifest is written before any video: a world killed mid-write is still known to be ours."""
    from physdiff.fileio import temp_path
    from physdiff.world.generate import WORLD_MANIFEST, _prepare, generate_world, video_ids, world_files

    out = tmp_path / "w"
    ids = video_ids(2, 0)
    _prepare(out, False, world_files(ids))
    (out / f"{ids[0]}_denoised.wav").write_bytes(b"half a wav")  # what a kill leaves
    temp_path(out / "summary.json").write_text("{")  # and a temporary of an atomic write
    assert (out / WORLD_MANIFEST).is_file()
    generate_world(out, _debug_world_cfg().world, overwrite=True, progress=False)
    assert (out / "summary.json").is_file() and (out / f"{ids[0]}_denoised.wav").stat().st_size > 1000
