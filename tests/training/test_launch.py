"""The launcher's local paths: 2-process CPU DDP of the prior stage, kill -9 during a checkpoint write, dry run."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from physdiff.fileio import is_temp
from physdiff.training import checkpoint as ck
from tests.training.conftest import PRIOR_FAST

REPO = Path(__file__).resolve().parents[2]
LAUNCH = REPO / "cluster" / "launch.py"


def _launch(args: list[str], timeout: int = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(LAUNCH), *args], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=REPO)


def _run_dir(out: str) -> Path:
    line = next(l for l in out.splitlines() if l.startswith("run folder:"))
    return Path(line.split(":", 1)[1].strip())


@pytest.mark.timeout(300)
def test_cpu_two_process_ddp_prior_stage(prior_data: Path) -> None:
    p = _launch(["--stage", "prior", "--cpu", "--procs", "2", "--preset", "debug", "--data-root", str(prior_data),
                 *PRIOR_FAST, "tracking.enabled=false"])
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    run_dir = _run_dir(p.stdout)
    done = json.loads((run_dir / "DONE.json").read_text())
    assert done["world_size"] == 2 and done["step"] == 12 and done["epoch"] == 2
    from physdiff.data.reader import load_manifest as _lm

    n_val = _lm(json.loads((run_dir / "export" / "manifest.json").read_text())["shard_root"], "val")["num_samples"]
    assert done["metrics"]["val/clips"] == n_val > 0 and done["metrics"]["val/mrstft_modal"] > 0  # the validation split
    # Both ranks really ran (torchrun per-rank logs) and wrote their RNG state.
    logs = sorted(run_dir.glob("logs/torchrun-*/*/attempt_0/*/stdout.log"))
    assert len(logs) == 2, logs
    last = ck.latest_checkpoint(run_dir / "checkpoints")
    assert (last.path / "rng_rank0.pt").exists() and (last.path / "rng_rank1.pt").exists()
    # Export: (w, gamma) for every clip of every split, readable by the data side.
    from physdiff.data.sidetable import read_side_table

    man = json.loads((run_dir / "export" / "manifest.json").read_text())
    from physdiff.data.reader import load_manifest

    for split in ("train", "val", "test"):
        n = load_manifest(man["shard_root"], split)["num_samples"]
        assert n > 0 and man["splits"][split]["count"] == n
        t = read_side_table(run_dir / "export" / man["splits"][split]["path"])
        assert len(t.keys) == n and t.arrays["gamma"].shape == (n, 100) and t.arrays["weight"].shape == (n, 100)
        assert (t.arrays["gamma"] >= 60 / 0.50001 - 1e-3).all() and ((t.arrays["weight"] > 0) & (t.arrays["weight"] < 1)).all()


@pytest.mark.timeout(300)
def test_kill_during_checkpoint_write_resumes_previous(prior_data: Path, tmp_path: Path) -> None:
    """kill -9 while a checkpoint folder is being written: the previous complete one is resumed."""
    from physdiff.config import resolve_config
    from physdiff.stages import train_stage

    # A wide model makes each write take long enough to be caught in the middle.
    over = [f"paths.data_root={prior_data}", *PRIOR_FAST, "train.checkpoint_every=1", "train.epochs=3",
            "prior.d_model=512", "prior.layers=4", "tracking.enabled=false", "train.progress=false"]
    cfg = resolve_config("debug", over)
    from physdiff.stages import stage_run_dir

    ckdir = stage_run_dir(cfg, "prior") / "checkpoints"
    cmd = [sys.executable, "-m", "physdiff.launch.worker", "--stage", "prior", "--preset", "debug", "--cpu", *over]
    proc = subprocess.Popen(cmd, cwd=REPO, env=dict(os.environ, OMP_NUM_THREADS="1"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    killed_during_write = False
    deadline = time.time() + 200
    try:
        while time.time() < deadline and proc.poll() is None:
            names = os.listdir(ckdir) if ckdir.is_dir() else []
            if any(is_temp(n) for n in names) and any(n.startswith("step_") for n in names):
                os.kill(proc.pid, signal.SIGKILL)
                killed_during_write = True
                break
            time.sleep(0.002)
    finally:
        if proc.poll() is None and not killed_during_write:
            proc.kill()
        proc.wait()
    assert killed_during_write, "never caught a checkpoint write in progress: " + (proc.stderr.read() if proc.stderr else "")
    leftovers = [n for n in os.listdir(ckdir) if is_temp(n)]
    assert leftovers, "the kill should have left a partial write behind"
    prev = ck.latest_checkpoint(ckdir)
    assert prev is not None
    # Resume in-process for one step: it must start from the previous complete checkpoint.
    r = train_stage(cfg, "prior", stop_fn=lambda: True, cpu=True)
    assert r.status == "stopped" and r.step == prev.step + 1
    assert not [n for n in os.listdir(ckdir) if is_temp(n)]  # partial write swept


def test_dry_run_two_nodes_eight_gpus(prior_data: Path) -> None:
    p = _launch(["--stage", "prior", "--gpus", "8", "--nodes", "2", "--partition", "gpu", "--time", "600",
                 "--dry-run", "--preset", "debug", "--data-root", str(prior_data), *PRIOR_FAST])
    assert p.returncode == 0, p.stderr
    out = p.stdout
    cfg = json.loads(out.split("# resolved config\n", 1)[1].split("\n# run folder", 1)[0])
    assert cfg["train"]["batches_per_epoch"] == 6 and cfg["preset"] == "debug"
    script = out.split("# sbatch script\n", 1)[1].split("# checks", 1)[0]
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=8", "#SBATCH --gpus-per-node=8",
                 "#SBATCH --partition=gpu", "#SBATCH --time=600", "#SBATCH --signal=USR2@120"):
        assert line in script, line
    assert "srun" in script and "submitit.core._submit" in script
    checks = out.split("# checks\n", 1)[1]
    # 3 train shards for 16 ranks: flagged; the data is present and the output writable.
    assert re.search(r"WARN shards: train has [1-9] shard\(s\)", checks) and "16 rank(s)" in checks
    assert "OK   output:" in checks and "OK   devices: 2 node(s) x 8 GPU(s) = 16 rank(s)" in checks
    assert not list((prior_data / "jobs").glob("*/*")) if (prior_data / "jobs").exists() else True  # nothing submitted


def test_dry_run_reports_missing_data(tmp_path: Path) -> None:
    p = _launch(["--stage", "prior", "--gpus", "1", "--dry-run", "--preset", "debug", "--data-root", str(tmp_path)])
    assert p.returncode == 0, p.stderr
    assert "FAIL data: no shards for split 'train'" in p.stdout
