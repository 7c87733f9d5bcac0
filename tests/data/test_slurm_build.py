"""The writer as a real SLURM job array (submitit map_array) on the local single-node cluster."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from physdiff.data.build import build_shards


@pytest.mark.slurm
@pytest.mark.timeout(300)
def test_slurm_array_build_matches_local(slurm_cluster, gh_source: Path, gh_shards, debug_cfg, tmp_path: Path) -> None:
    from physdiff.launch.slurm import array_executor

    local_out, local = gh_shards
    out = tmp_path / "slurm"
    params = {"slurm_partition": slurm_cluster["partition"], "timeout_min": 10, "cpus_per_task": 1}
    s = build_shards(gh_source, out, debug_cfg, strict=False, slurm=array_executor(out / "_slurm", params))
    assert s["tasks"] == local["tasks"] > 1 and s["tasks_reused"] == 0
    assert (s["written"], s["skipped"], s["annotated"]) == (local["written"], local["skipped"], local["annotated"])
    for split in ("train", "test"):
        a = json.loads((out / split / "manifest.json").read_text())
        b = json.loads((local_out / split / "manifest.json").read_text())
        # same content, byte for byte: the shards do not depend on where a task ran
        assert [(x["name"], x["count"], x["sha256"]) for x in a["shards"]] == [(x["name"], x["count"], x["sha256"]) for x in b["shards"]]
    assert any((out / "_slurm").rglob("*_log.out"))
    again = build_shards(gh_source, out, debug_cfg, slurm=array_executor(out / "_slurm", params))
    assert again["tasks_reused"] == again["tasks"]  # resume: nothing resubmitted
