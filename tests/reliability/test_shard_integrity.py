"""Shard integrity on read (issue [10/14]): a shard whose bytes no longer match its manifest is refused.

The fault is the silent one: the modes of one clip multiplied by 3, written back as a valid ``.npy``
of the same size into a valid tar, so every member still decodes and only the shard's sha256 (in the
manifest since the build) can tell. Before the reader hashed shards while reading them, these clips
trained as if nothing had changed. Now:

- reading it is a one-line DataError naming the shard, with or without loader workers (a worker's
  error is not torch's "Caught DataError in DataLoader worker process 0" + traceback);
- with ``skip_corrupt`` the shard is one counted skip and none of its clips is yielded;
- ``verify="shard"`` (default) yields no clip of the shard before the verdict; ``verify="stream"``
  does, and says how many;
- the prior stage (which synthesises the modes) stops with one ``error:`` line naming the shard.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from physdiff.data.reader import make_loader
from physdiff.errors import DataError
from tests.reliability.conftest import REPO, env1, launch_cmd
from tests.reliability.shardtools import reshard, scale_modes

pytestmark = pytest.mark.timeout(400)


def _tamper(debug_data: dict, root: Path, per_shard: int) -> dict:
    """The debug shards copied, the train split re-sharded to ``per_shard``-clip shards, clip 1 of shard 0 x3."""
    shards = reshard(Path(debug_data["shards"]), root, per_shard=per_shard)
    victim = shards[0]
    before = {b["key"][0]: b["modes"][0].numpy() for b in make_loader(root, "train", batch_size=1, mode="eval")}
    key = scale_modes(victim, sample=1)
    man = json.loads((root / "train" / "manifest.json").read_text())
    return {"root": root, "victim": victim, "key": key, "before": before, "manifest": man}


@pytest.fixture()
def tampered(debug_data: dict, tmp_path: Path) -> dict:
    return _tamper(debug_data, tmp_path / "shards", per_shard=3)


def _one_line(e: pytest.ExceptionInfo, victim: Path) -> str:
    msg = str(e.value)
    assert type(e.value) is DataError, type(e.value)
    assert "\n" not in msg and "Caught" not in msg and "Traceback" not in msg, msg
    assert str(victim) in msg and "does not match its manifest" in msg, msg
    return msg


def test_the_fault_is_silent_without_the_hash(tampered: dict) -> None:
    """The tampered shard is a valid tar whose clip decodes to 3x the modes (what used to train)."""
    got = {b["key"][0]: b["modes"][0].numpy()
           for b in make_loader(tampered["root"], "train", batch_size=1, mode="eval", verify="off")}
    assert sorted(got) == sorted(tampered["before"])
    np.testing.assert_allclose(got[tampered["key"]], 3 * tampered["before"][tampered["key"]], rtol=1e-6)


@pytest.mark.parametrize("mode,workers", [("eval", 0), ("eval", 2), ("train", 2)])
def test_tampered_shard_is_a_one_line_error_naming_it(tampered: dict, mode: str, workers: int) -> None:
    ld = make_loader(tampered["root"], "train", batch_size=1, mode=mode, num_workers=workers,
                     batches_per_epoch=100 if mode == "train" else None)  # ~70 shard draws: it comes up
    with pytest.raises(DataError) as e:
        for _ in ld:
            pass
    msg = _one_line(e, tampered["victim"])
    assert "none of its 3 samples used" in msg  # all 3 decode: only the hash tells


def test_skip_corrupt_drops_the_whole_shard_counted(tampered: dict) -> None:
    ld = make_loader(tampered["root"], "train", batch_size=2, mode="eval", num_workers=2, skip_corrupt=True)
    keys = [k for b in ld for k in b["key"]]
    victim_keys = {k for k in tampered["before"]} - set(keys)
    assert ld.skip_count == 1 and str(tampered["victim"]) in ld.skipped[0], ld.skipped
    assert tampered["key"] in victim_keys and len(victim_keys) == tampered["manifest"]["shards"][0]["count"] == 3
    assert len(keys) == len(set(keys)) == tampered["manifest"]["num_samples"] - 3


def test_no_clip_of_the_shard_before_the_verdict_unless_streaming(tampered: dict) -> None:
    """verify='shard' holds a shard's clips until its last byte matched; verify='stream' does not."""
    victim_keys = set(list(tampered["before"])[:3])  # reshard keeps the order: shard 0 = the first 3 clips
    for verify, leaked in (("shard", 0), ("stream", 3)):
        seen: list[str] = []
        with pytest.raises(DataError) as e:
            for b in make_loader(tampered["root"], "train", batch_size=1, mode="eval", verify=verify):
                seen += b["key"]
        assert len(victim_keys & set(seen)) == leaked, (verify, seen)
        assert str(tampered["victim"]) in str(e.value)
        if verify == "stream":
            assert "3 of its samples were already yielded" in str(e.value)


def test_prior_training_refuses_the_tampered_shard(debug_data: dict, tmp_path: Path) -> None:
    """The real stage, in-process (--local), 2 loader workers: one ``error:`` line, non-zero exit.
    One train shard, so the resampled stream cannot miss it."""
    tampered = _tamper(debug_data, tmp_path / "shards", per_shard=10_000)
    assert len(tampered["manifest"]["shards"]) == 1
    data = tmp_path / "data"
    args = ["--stage", "prior", "--local", "--preset", "debug", "--data-root", str(data),
            f"train.shards={tampered['root']}", "tracking.enabled=false", "train.progress=false",
            "loader.num_workers=2", "train.epochs=1", "train.batches_per_epoch=30", "loader.batch_size=2"]
    p = subprocess.run(launch_cmd(*args), cwd=REPO, env=env1(), capture_output=True, text=True, timeout=300)
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert p.returncode != 0, p.stderr[-3000:]
    assert lines and lines[-1].startswith("error: "), p.stderr[-3000:]
    assert str(tampered["victim"]) in lines[-1] and "does not match its manifest" in lines[-1], lines[-1]
    assert "Caught DataError" not in p.stderr and "Traceback" not in p.stderr, p.stderr[-3000:]
    assert not list(data.rglob("DONE.json"))  # it did not finish as if nothing had changed
