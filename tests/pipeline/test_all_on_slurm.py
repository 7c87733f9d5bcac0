"""``launch.py --stage all`` on real SLURM: the chain is submitted at once as afterok-dependent jobs.

Debug preset on the local one-node cluster (fixture ``slurm_cluster``), Table 1 rows nn_retrieval, video
and ours: world, shards (after world), prior, video and the classifier (after shards), diffusion-ours
(after prior and video) and diffusion-video (after video), index-ours (after diffusion-ours), generate
(after index-ours) and evaluate (after the classifier, video and both variants). Checks the dependencies
in the sbatch scripts submitit wrote, that every stage finished, and that the report exists.
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
           "--time", "120", "--preset", "debug", f"paths.data_root={tmp_path}", "train.progress=false",
           "eval.variants=[nn_retrieval,video,ours]"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=840,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    jobs = dict(re.findall(r"\[all\] ([\w-]+): job (\d+)", proc.stderr))  # the launcher logs to stderr
    assert set(jobs) == {"world", "shards", "prior", "video", "classifier", "diffusion-ours", "diffusion-video",
                         "index-ours", "generate", "evaluate"}, proc.stderr[-3000:]

    def dependency(step: str) -> set[str]:
        scripts = list((tmp_path / "jobs").glob(f"*/{jobs[step]}/*submission.sh"))
        assert scripts, f"no sbatch script for {step} under {tmp_path / 'jobs'}"
        m = re.search(r"#SBATCH --dependency=afterok:([\d:]+)", scripts[0].read_text())
        return set(m.group(1).split(":")) if m else set()

    assert dependency("world") == set()
    assert dependency("shards") == {jobs["world"]}
    assert dependency("prior") == dependency("video") == dependency("classifier") == {jobs["shards"]}
    assert dependency("diffusion-ours") == {jobs["prior"], jobs["video"]}
    assert dependency("diffusion-video") == {jobs["video"]}
    assert dependency("index-ours") == {jobs["diffusion-ours"]}
    assert dependency("generate") == {jobs["index-ours"]}
    # Fig. 5b's modal + residual bar reads the prior's retrieved (w, gamma): evaluate waits for prior too
    assert dependency("evaluate") == {jobs["classifier"], jobs["video"], jobs["prior"], jobs["index-ours"],
                                      jobs["diffusion-video"]}
    runs = tmp_path / "runs"
    for name in ("prior", "video", "classifier", "diffusion-ours", "diffusion-video", "index-ours"):
        assert list(runs.glob(f"{name}-*/DONE.json")), f"{name} did not finish"
    assert list(runs.glob("evaluate-*/report.md")) and list(runs.glob("generate-ours-*/DONE.json"))
