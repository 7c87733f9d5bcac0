"""The prior stage through real SLURM (submitit): 2 CPU tasks, preempted twice, requeued, resumed.

Needs the local single-node SLURM (fixture ``slurm_cluster``). The reference is an uninterrupted
2-process run through the torchrun path; the SLURM run reads the same shards from another data
folder (``train.shards``, non-semantic), so both have the same run hash but separate run folders.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from physdiff.training import checkpoint as ck
from tests.training.conftest import PRIOR_FAST

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slurm]


def _launch_module():
    import physdiff.launch

    return physdiff.launch


def _max_step(run_dir: Path) -> int:
    p = run_dir / "metrics.jsonl"
    if not p.exists():
        return 0
    return max((json.loads(l)["step"] for l in p.read_text().splitlines() if l.strip()), default=0)


def _wait_step(run_dir: Path, step: int, job, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while _max_step(run_dir) < step:
        assert time.time() < deadline, f"run never reached step {step}; logs in {job.paths.folder}"
        time.sleep(0.2)


@pytest.mark.timeout(600)
def test_slurm_preempted_twice_resumes_to_same_weights_and_one_mlflow_run(
    slurm_cluster: dict, prior_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Same intra-op thread count in both runs (sbatch exports this environment to the tasks):
    # a different count changes float reduction order, so results would differ in the last bits.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    from physdiff.config import resolve_config
    from physdiff.stages import shards_dir

    shards = shards_dir(resolve_config("debug", [f"paths.data_root={prior_data}", *PRIOR_FAST]))
    common = ["--preset", "debug", *PRIOR_FAST, f"train.shards={shards}", "train.epochs=3"]

    # Reference: uninterrupted, 2 gloo processes through torchrun.
    ref_root = tmp_path / "ref"
    p = subprocess.run([sys.executable, str(REPO / "cluster/launch.py"), "--stage", "prior", "--cpu", "--procs", "2",
                        "--data-root", str(ref_root), *common, "tracking.enabled=false"],
                       capture_output=True, text=True, timeout=300, cwd=REPO, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert p.returncode == 0, p.stderr[-3000:]

    # The same config on SLURM, preempted at two steps (submitit's _interrupt: SIGTERM + USR2).
    launch = _launch_module()
    root = tmp_path / "slurm"
    out = launch.launch(["--stage", "prior", "--cpu", "--procs", "2", "--slurm", "--partition",
                         slurm_cluster["partition"], "--time", "120", "--data-root", str(root), *common])
    job, run_dir = out.job, out.run_dir
    assert out.mlflow_run_id
    _wait_step(run_dir, 3, job)
    job._interrupt()
    _wait_step(run_dir, 11, job)  # requeued, resumed and past the first stop (18 steps in all)
    job._interrupt()
    res = job.results()[0]
    assert res["status"] == "finished" and res["step"] == 18

    err = (Path(job.paths.folder) / f"{job.job_id}_0_log.err").read_text()
    # the job logs through logging (physdiff.logs: stderr, the job's .err file); stdout holds the result line
    assert "restart=1" in err and "restart=2" in err, err[-2000:]
    assert err.count("resumed from") == 2, err[-3000:]

    # Weights equal to the uninterrupted run (CPU, deterministic: tolerance 0, bitwise).
    ref_dir = ref_root / "runs" / run_dir.name
    a = ck.load_state(ck.latest_checkpoint(ref_dir / "checkpoints").path)["model"]
    b = ck.load_state(ck.latest_checkpoint(run_dir / "checkpoints").path)["model"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k}: max diff {(a[k] - b[k]).abs().max()}"

    # One MLflow run for the stage run, continued across both requeues.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    exp = client.get_experiment_by_name("physdiff")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1 and runs[0].info.run_id == out.mlflow_run_id
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["prior.residual_dims"] == "100" and run.data.params["train.epochs"] == "3"
    assert run.data.tags["physdiff.run_hash"] == run_dir.name.split("-", 1)[1]
    assert run.data.tags["physdiff.resumes"] == "2"  # requeued twice: two resumes from a checkpoint
    hist = client.get_metric_history(run.info.run_id, "train/loss")
    assert {m.step for m in hist} == set(range(1, 19))
    assert "val/mrstft_modal" in run.data.metrics and "val/mrstft_full" in run.data.metrics
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.json", "DONE.json", "metrics.jsonl", "media"} <= arts
    media = [a.path for a in client.list_artifacts(run.info.run_id, "media/epoch_0003")]
    assert any(m.endswith(".png") for m in media) and any(m.endswith(".wav") for m in media)
