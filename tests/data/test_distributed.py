"""The reader under a real 2-process torchrun (gloo): eval sees every sample once, train ranks stay in step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from physdiff.data.reader import make_loader


def test_torchrun_two_ranks(gh_shards, tmp_path: Path, repo_root: Path) -> None:
    out, _ = gh_shards
    torchrun = Path(sys.executable).with_name("torchrun")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node=2", str(repo_root / "tests/data/ddp_reader.py"),
                        str(out), str(tmp_path)], capture_output=True, text=True, timeout=180, env=env, cwd=repo_root)
    assert r.returncode == 0, r.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in range(2)]
    for split in ("train", "test"):
        everything = sorted(k for b in make_loader(out, split, batch_size=4, mode="eval") for k in b["key"])
        across = sorted(k for rk in ranks for k in rk["eval"][split])
        assert across == everything  # every sample exactly once across ranks (and their 2 workers each)
        assert all(rk["eval"][split] for rk in ranks) or split == "test"
    # train: 3 batches per rank (split 2 + 1 over the 2 loader workers), equal on both ranks
    assert ranks[0]["train_batches"] == ranks[1]["train_batches"] == ranks[0]["len"] == 3
    assert ranks[0]["all_counts"] == ranks[1]["all_counts"] == [ranks[0]["train_batches"]] * 2
