"""Real SLURM preemption of the diffusion stage at two different steps: the final weights equal an
uninterrupted run's.

The job is submitted by ``cluster/launch.py`` through submitit to the local single-node SLURM
(fixture ``slurm_cluster``) with a 120-minute limit (below ~50 minutes submitit would count the
preemption signal as a time-out). ``job._interrupt()`` preempts it the way SLURM does (SIGTERM, then
USR2 to the batch step): the trainer stops at the next step boundary, checkpoints, submitit requeues
the job, and the requeued job resumes from the run folder. The reference is the same config trained
without interruption by ``launch.py --local`` in another data folder (same run hash).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.reliability.conftest import (REPO, assert_same_weights, env1, final_model, launch_cmd, max_step, run,
                                        wait_for)

pytestmark = [pytest.mark.slow, pytest.mark.slurm, pytest.mark.timeout(900)]


def _launch_module():
    import physdiff.launch

    return physdiff.launch


def test_diffusion_preempted_twice_on_slurm_resumes_to_identical_weights(
    slurm_cluster: dict, diff_env: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # sbatch exports this environment to the job: one intra-op thread, as in the reference run.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    common = ["--preset", "debug", *diff_env["overrides"], f"train.shards={diff_env['shards']}",
              "tracking.enabled=false", "train.epochs=3", "train.batches_per_epoch=4"]

    ref = run(launch_cmd("--stage", "diffusion", "--local", "--data-root", str(tmp_path / "ref"), *common), 300,
              env=env1())
    assert ref.returncode == 0, ref.stderr[-3000:]

    launch = _launch_module()
    out = launch.launch(["--stage", "diffusion", "--cpu", "--procs", "1", "--slurm", "--partition",
                         slurm_cluster["partition"], "--time", "120", "--data-root", str(tmp_path / "slurm"), *common])
    job, run_dir = out.job, out.run_dir
    logs = Path(job.paths.folder)
    try:
        wait_for(lambda: max_step(run_dir) >= 2, 400, f"step 2 (job logs in {logs})", poll=0.2)
        job._interrupt()  # first preemption, early in epoch 0
        wait_for(lambda: max_step(run_dir) >= 7, 400, f"step 7 after the requeue (job logs in {logs})", poll=0.2)
        job._interrupt()  # second preemption, in epoch 1
        res = job.results()[0]
    except BaseException:
        job.cancel(check=False)
        raise
    assert res["status"] == "finished" and res["step"] == 12, res
    err_log = (logs / f"{job.job_id}_0_log.err").read_text()
    # the job logs through logging (physdiff.logs: stderr, the job's .err file); stdout holds the result line
    assert "restart=1" in err_log and "restart=2" in err_log, err_log[-2000:]
    resumed = [l for l in err_log.splitlines() if "resumed from" in l]
    assert len(resumed) == 2, err_log[-3000:]
    steps = [int(l.split("step ")[-1].rstrip(")")) for l in resumed]
    assert steps[0] != steps[1] and 2 <= steps[0] < steps[1] < 12, resumed  # two different preemption points

    ref_run = tmp_path / "ref" / "runs" / run_dir.name
    assert_same_weights(final_model(ref_run), final_model(run_dir))
