"""The local SLURM cluster the launcher tests rely on: a real sbatch job runs and its output arrives."""

import subprocess
import time


def test_sbatch_job_runs(slurm_cluster, tmp_path):
    out = tmp_path / "job.out"
    sub = subprocess.run(
        ["sbatch", "--parsable", "-p", slurm_cluster["partition"], "-o", str(out), "--wrap", "echo physdiff-$SLURM_JOB_ID"],
        capture_output=True, text=True, check=True,
    )
    job_id = sub.stdout.strip().split(";")[0]
    deadline = time.time() + 60
    while time.time() < deadline and not (out.exists() and out.read_text().strip()):
        time.sleep(0.2)
    assert out.read_text().strip() == f"physdiff-{job_id}"
