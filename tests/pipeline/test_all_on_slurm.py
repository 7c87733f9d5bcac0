"""``launch.py --stage all`` on real SLURM: the chain is submitted at once as afterok-dependent jobs.

Debug preset on the local one-node cluster (fixture ``slurm_cluster``): the data job, prior and
video (both after data), diffusion (after prior and video), index, then generate and evaluate (after
index). Checks the dependencies in the sbatch scripts submitit wrote, that every stage finished, and
that the report exists.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slurm, pytest.mark.slow]


@pytest.mark.timeout(900)
def test_stage_all_submits_a_dependent_chain(slurm_cluster: dict, tmp_path: Path) -> None:
    cmd = [sys.executable, "cluster/launch.py", "--stage", "all", "--cpu", "--procs", "1", "--slurm", "--wait",
           "--time", "120", "--preset", "debug", f"paths.data_root={tmp_path}", "train.progress=false"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=840,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    jobs = dict(re.findall(r"\[all\] (\w+): job (\d+)", proc.stdout))
    assert set(jobs) == {"data", "prior", "video", "diffusion", "index", "generate", "evaluate"}, proc.stdout

    def dependency(stage: str) -> set[str]:
        scripts = list((tmp_path / "jobs").glob(f"{stage}-*/{jobs[stage]}/*submission.sh"))
        assert scripts, f"no sbatch script for {stage} under {tmp_path / 'jobs'}"
        m = re.search(r"#SBATCH --dependency=afterok:([\d:]+)", scripts[0].read_text())
        return set(m.group(1).split(":")) if m else set()

    assert dependency("prior") == {jobs["data"]}
    assert dependency("video") == {jobs["data"]}
    assert dependency("diffusion") == {jobs["prior"], jobs["video"]}
    assert dependency("index") == {jobs["diffusion"]}
    assert dependency("generate") == dependency("evaluate") == {jobs["index"]}
    runs = tmp_path / "runs"
    for stage in ("prior", "video", "diffusion"):
        assert list(runs.glob(f"{stage}-*/DONE.json")), f"{stage} did not finish"
    assert list(runs.glob("evaluate-*/report.md")) and list(runs.glob("generate-*"))
