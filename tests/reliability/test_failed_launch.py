"""A launch that fails leaves no orphan run folder or RUNNING MLflow run: the run is marked FAILED with the reason.

``physdiff launch`` creates the run folder and its MLflow run before the stage starts (so their names can be
printed). A stage that then fails (here: no shards for the config) must not leave them behind: the folder
it made holds nothing worth keeping and goes; the MLflow run ends FAILED with a ``physdiff.failure`` tag
naming the cause. A folder holding training progress is kept (it resumes) with ``FAILED.json``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.reliability.conftest import REPO, env1, launch_cmd


def test_failed_launch_removes_its_empty_run_folder_and_fails_its_mlflow_run(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    data = tmp_path / "data"
    p = subprocess.run(launch_cmd("--stage", "prior", "--local", "--preset", "debug", "--data-root", str(data),
                                  "train.progress=false"), cwd=REPO, env=env1(), capture_output=True, text=True, timeout=300)
    assert p.returncode == 2, p.stderr[-3000:]
    err = p.stderr.strip().splitlines()
    assert err[-1].startswith("error: ") and "manifest" in err[-1], p.stderr[-3000:]
    assert "MLflow run:" in p.stdout  # it got as far as creating both
    assert not list((data / "runs").glob("prior-*")), sorted(str(x) for x in (data / "runs").rglob("*"))
    assert any("removed" in l and "before anything was trained" in l for l in err), p.stderr[-2000:]

    c = MlflowClient(f"sqlite:///{data / 'mlflow.db'}")
    runs = c.search_runs([e.experiment_id for e in c.search_experiments()])
    assert len(runs) == 1, runs
    run = runs[0]
    assert run.info.status == "FAILED", run.info.status
    reason = run.data.tags.get("physdiff.failure", "")
    assert "manifest" in reason and reason == err[-1][len("error: "):], (reason, err[-1])


def test_failed_launch_keeps_a_folder_with_progress_and_records_why(tmp_path: Path) -> None:
    from physdiff.config import resolve_config
    from physdiff.launch.failure import FAILED, clear_failure, record_failed_launch
    from physdiff.errors import DataError

    cfg = resolve_config("debug", [f"paths.data_root={tmp_path}", "tracking.enabled=false"])
    run_dir = tmp_path / "runs" / "prior-0123456789"
    (run_dir / "checkpoints" / "step_00000004").mkdir(parents=True)
    (run_dir / "config.json").write_text("{}\n")
    (run_dir / "metrics.jsonl").write_text('{"step": 1}\n')
    what = record_failed_launch(run_dir, cfg, None, DataError("no shards at X/train/manifest.json"), created=True)
    assert what == "FAILED.json written" and (run_dir / "metrics.jsonl").exists()
    rec = json.loads((run_dir / FAILED).read_text())
    assert rec["reason"] == "no shards at X/train/manifest.json"
    clear_failure(run_dir)  # what the next launch of the run does
    assert not (run_dir / FAILED).exists()
    # A folder this launch did not create is never removed, even when it holds nothing else.
    other = tmp_path / "runs" / "prior-other"
    other.mkdir()
    (other / "config.json").write_text("{}\n")
    assert record_failed_launch(other, cfg, None, DataError("x"), created=False) == "FAILED.json written"
    assert other.is_dir()
