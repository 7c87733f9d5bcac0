"""A real local Ray Tune sweep of the prior stage (sweeps/residual_dims.py) tracked in MLflow, and its resume."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.sweeps.world import REPO, clean_env

pytestmark = pytest.mark.timeout(600)


def _rows(sweep_dir: Path) -> list[dict[str, str]]:
    with (sweep_dir / "results.csv").open() as f:
        return list(csv.DictReader(f))


def test_sweep_table_figure_and_concurrency(sweep4: dict) -> None:
    rows = _rows(sweep4["dir"])
    assert sorted((int(r["M"]), float(r["lr"])) for r in rows) == [(0, 1e-3), (0, 3e-3), (25, 1e-3), (25, 3e-3)]
    for r in rows:
        assert r["status"] in ("finished", "stopped (ASHA)"), r
        assert float(r["best_loss"]) > 0 and 1 <= int(r["epochs"]) <= 3
        assert Path(r["run_dir"]).is_dir() and r["mlflow_run_id"]
    # Per-M ASHA: each M keeps at least one trial to the end (the lr choice happens within an M).
    for M in (0, 25):
        assert any(r["status"] == "finished" and int(r["epochs"]) == 3 for r in rows if int(r["M"]) == M)
    # Finished trials are complete stage runs (export + DONE.json), not runs cut short by Tune's stop.
    for r in rows:
        if r["status"] == "finished":
            assert (Path(r["run_dir"]) / "DONE.json").exists()
    # M = 0 is modal resynthesis only: its loss is the modal-only loss.
    for r in rows:
        if int(r["M"]) == 0:
            assert float(r["best_loss"]) == pytest.approx(float(r["modal_only_loss"]), rel=1e-5)
    assert (sweep4["dir"] / "results.md").read_text().startswith("| M | lr |")
    png = sweep4["dir"] / "fig5a.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # At most 2 trials ran at once (Ray had 4 CPUs, so --max-concurrent is what limited it).
    spans = []
    for res in (sweep4["dir"] / "tune").glob("*/result.json"):
        lines = [json.loads(x) for x in res.read_text().splitlines() if x.strip()]
        last = lines[-1]
        spans.append((last["timestamp"] - last["time_total_s"], last["timestamp"]))
    assert len(spans) == 4
    for start, _ in spans:
        running = sum(1 for s, e in spans if s <= start + 0.5 and e > start + 0.5)
        assert running <= 2, spans


def test_test_split_scores_the_validation_selected_trial_once(sweep4: dict) -> None:
    """--test: per M the lr with the lowest validation loss, at its best epoch, scored on every test clip."""
    from physdiff.data.reader import load_manifest

    rows = _rows(sweep4["dir"])
    scored = json.loads((sweep4["dir"] / "test.json").read_text())
    assert sorted(r["M"] for r in scored) == [0, 25]  # one lr per M (one seed)
    for s in scored:
        mine = {float(r["lr"]): float(r["best_loss"]) for r in rows if int(r["M"]) == s["M"] and r["best_loss"]}
        assert s["lr"] == min(mine, key=mine.get)  # selected on validation, not on test
        assert s["val_loss"] == pytest.approx(mine[s["lr"]])
        assert s["all_clips"] == s["clips"] > 0
        assert s["all_full_lo"] <= s["all_full"] <= s["all_full_hi"]
        if s["M"] == 0:  # modal alone: both columns are the same resynthesis
            assert s["all_full"] == pytest.approx(s["all_modal"], rel=1e-5)
    shards = Path(json.loads((sweep4["dir"] / "sweep.json").read_text())["base_config"]["train"]["shards"])
    assert scored[0]["clips"] == int(load_manifest(shards, "test")["num_samples"])
    assert (sweep4["dir"] / "test.md").read_text().startswith("| M | lr (val-selected) |")


def test_trials_are_nested_mlflow_runs(sweep4: dict) -> None:
    from mlflow.tracking import MlflowClient

    c = MlflowClient(sweep4["uri"])
    setup = json.loads((sweep4["dir"] / "sweep.json").read_text())
    parent = c.get_run(setup["parent_run_id"])
    assert parent.info.status == "FINISHED" and parent.info.run_name == "sweep-s4"
    arts = {a.path for a in c.list_artifacts(parent.info.run_id)}
    assert {"results.csv", "results.md", "fig5a.png", "sweep.json"} <= arts
    curve = {m.step: m.value for m in c.get_metric_history(parent.info.run_id, "best_val_mrstft")}
    assert sorted(curve) == [0, 25]

    kids = c.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(kids) == 4
    rows = {r["mlflow_run_id"]: r for r in _rows(sweep4["dir"])}
    assert set(rows) == {k.info.run_id for k in kids}
    for k in kids:
        r = rows[k.info.run_id]
        assert k.data.params["prior.residual_dims"] == r["M"]
        assert float(k.data.params["train.lr"]) == pytest.approx(float(r["lr"]))
        assert k.data.tags["physdiff.stage"] == "prior" and k.data.tags["sweep.status"] == r["status"]
        assert Path(k.data.tags["physdiff.final_checkpoint"]).is_dir()
        hist = c.get_metric_history(k.info.run_id, "val/mrstft_full")
        assert [m.step for m in hist] == sorted(m.step for m in hist) and len(hist) == int(r["epochs"])
        assert min(m.value for m in hist) == pytest.approx(float(r["best_loss"]), rel=1e-6)
        assert k.info.status == ("FINISHED" if r["status"] == "finished" else "KILLED")


def test_interrupted_sweep_resumes_without_rerunning_finished_trials(debug_shards: Path, tmp_path: Path) -> None:
    """SIGINT the driver while the 2nd of 2 trials trains; --resume continues it from its checkpoint."""
    data = tmp_path / "data"
    env = clean_env(data)
    base = [sys.executable, "sweeps/residual_dims.py", "--name", "r2", "--num-cpus", "2"]
    cmd = base + ["--preset", "debug", "--dims", "0,10", "--lr", "1e-3", "--max-concurrent", "1", "--no-asha",
                  f"train.shards={debug_shards}", "train.epochs=8"]
    log = (tmp_path / "first.log").open("w")
    p = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    runs = data / "runs"

    def done_runs() -> list[Path]:
        return sorted(d for d in runs.glob("prior-*") if (d / "DONE.json").exists()) if runs.exists() else []

    def ckpts(d: Path) -> list[Path]:
        return sorted((d / "checkpoints").glob("step_*"))

    deadline = time.time() + 300
    second = None
    while time.time() < deadline and p.poll() is None:
        finished = done_runs()
        if finished:
            others = [d for d in runs.glob("prior-*") if d not in finished and ckpts(d)]
            if others:  # the second trial has a complete epoch checkpoint: interrupt now
                second = others[0]
                break
        time.sleep(0.2)
    assert second is not None, f"never saw trial 1 finish and trial 2 checkpoint:\n{(tmp_path / 'first.log').read_text()[-4000:]}"
    p.send_signal(signal.SIGINT)
    rc = p.wait(timeout=180)
    log.close()
    first_log = (tmp_path / "first.log").read_text()
    assert rc == 130, f"expected an interrupted sweep (130), got {rc}:\n{first_log[-4000:]}"
    assert "--resume --name r2" in first_log
    (first,) = done_runs()
    assert not (second / "DONE.json").exists(), "the 2nd trial finished before the interrupt; nothing to resume"
    done_before = (first / "DONE.json").stat().st_mtime_ns
    jsonl_before = (first / "metrics.jsonl").read_text()
    mlflow_ids = json.loads((second / "mlflow.json").read_text())
    rows_before = {(r["M"], r["status"]) for r in _rows(data / "sweeps" / "r2")}
    assert any(s.startswith("unfinished") for _, s in rows_before), rows_before

    p2 = subprocess.run(base + ["--resume"], cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert p2.returncode == 0, f"resume failed:\n{p2.stdout[-3000:]}\n{p2.stderr[-5000:]}"
    rows = _rows(data / "sweeps" / "r2")
    assert [(r["M"], r["status"], r["epochs"]) for r in rows] == [("0", "finished", "8"), ("10", "finished", "8")]
    # The finished trial was not rerun: its stage run is untouched.
    assert (first / "DONE.json").stat().st_mtime_ns == done_before
    assert (first / "metrics.jsonl").read_text() == jsonl_before
    # The interrupted one continued from its trainer checkpoint, in the same MLflow run.
    assert "[prior] resumed from" in p2.stderr
    assert json.loads((second / "mlflow.json").read_text()) == mlflow_ids
    epochs_logged = [json.loads(x)["epoch"] for x in (second / "metrics.jsonl").read_text().splitlines()
                     if "val/mrstft_full" in x]
    assert epochs_logged == sorted(set(epochs_logged)) and epochs_logged[-1] == 8  # no epoch evaluated twice

    from mlflow.tracking import MlflowClient

    c = MlflowClient(f"sqlite:///{data / 'mlflow.db'}")
    setup = json.loads((data / "sweeps" / "r2" / "sweep.json").read_text())
    kids = c.search_runs([c.get_run(setup["parent_run_id"]).info.experiment_id],
                         f"tags.mlflow.parentRunId = '{setup['parent_run_id']}'")
    assert len(kids) == 2 and all(k.info.status == "FINISHED" for k in kids)
    assert c.get_run(setup["parent_run_id"]).info.status == "FINISHED"


def test_bad_arguments_give_one_line_errors(tmp_path: Path) -> None:
    env = clean_env(tmp_path / "data")
    for args, needle in ((["--dims", "0,x"], "--dims"), (["--resume"], "--resume needs --name"),
                         (["--resume", "--name", "nope"], "no sweep to resume"),
                         (["--lr-loguniform", "1e-2", "1e-3"], "--lr-loguniform")):
        p = subprocess.run([sys.executable, "sweeps/residual_dims.py", *args], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=120)
        assert p.returncode == 2 and needle in p.stderr and "Traceback" not in p.stderr, (args, p.stderr)
