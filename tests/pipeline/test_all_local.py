"""``--stage=all --local`` end to end (debug preset), then what the artifact contract promises about it:

- MLflow holds one parent run with every stage run nested under it, named by stage and variant, with
  0 resumes, the git commit, and the generated media;
- a rerun skips every stage;
- ``generate`` finds the trained runs from another working directory through ``--run-from`` (a run folder
  or a data folder) and ``--data-root``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.log_rules import check_progress_lines

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow]
FAST = ["train.progress=false", "loader.num_workers=0", "eval.variants=[nn_retrieval,video,video_label,ours]"]


def _run(args: list[str], cwd: Path = REPO, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                          env=dict(os.environ, OMP_NUM_THREADS="2"))


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> dict:
    data = tmp_path_factory.mktemp("all-local")
    # progress on, as in the README's main job: its log is what test_the_log_a_slurm_job_can_hold reads
    p = _run([str(REPO / "cluster/launch.py"), "--stage=all", "--local", "--preset", "debug", "--data-root", str(data),
              *[o for o in FAST if not o.startswith("train.progress")]])
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    return {"data": data, "stdout": p.stdout, "stderr": p.stderr}


def test_the_log_a_slurm_job_can_hold(pipeline: dict) -> None:
    """No cursor escapes, no line over 1,000 characters, and progress lines at most every 10 % or 60 s."""
    log = pipeline["stdout"] + pipeline["stderr"]
    assert "\r" not in log and "\x1b[" not in log
    lines = log.splitlines()
    assert max(len(line) for line in lines) <= 1000, max(lines, key=len)[:300]
    bars = check_progress_lines(lines)
    assert {"prior", "video", "diffusion"} <= set(bars), sorted(bars)


@pytest.mark.timeout(900)
def test_mlflow_holds_the_pipeline_as_one_parent_run(pipeline: dict) -> None:
    from mlflow.tracking import MlflowClient

    data = pipeline["data"]
    client = MlflowClient(f"sqlite:///{data / 'mlflow.db'}")
    exp = client.get_experiment_by_name("physdiff")
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("physdiff.stage") == "pipeline"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    pid = parents[0].info.run_id
    children = {r.info.run_name: r for r in runs if r.info.run_id != pid}
    assert all(r.data.tags.get("mlflow.parentRunId") == pid for r in children.values()), \
        {n: r.data.tags.get("mlflow.parentRunId") for n, r in children.items()}
    stages = sorted({r.data.tags["physdiff.stage"] for r in children.values()})
    assert stages == ["classifier", "diffusion", "evaluate", "generate", "index", "prior", "shards", "video", "world"]
    names = set(children)
    for variant in ("video", "video_label", "ours"):
        assert any(n.startswith(f"diffusion-{variant}-") for n in names), names
    assert any(n.startswith("index-ours-") for n in names) and any(n.startswith("index-video_label-") for n in names)
    for r in [*children.values(), parents[0]]:
        assert r.data.tags["physdiff.resumes"] == "0", (r.info.run_name, r.data.tags["physdiff.resumes"])
        assert len(r.data.tags.get("mlflow.source.git.commit", "")) == 40
        assert r.info.run_name == Path(r.data.tags["physdiff.run_dir"]).name
    # the generate stage's media: every MP4 and comparison figure, a few WAVs, every generation.json
    gen = next(r for r in children.values() if r.data.tags["physdiff.stage"] == "generate")
    videos = [a.path for a in client.list_artifacts(gen.info.run_id, "videos")]
    files = [a.path for v in videos for a in client.list_artifacts(gen.info.run_id, v)]
    assert videos and all(any(f.startswith(v + "/") and f.endswith("_generated.mp4") for f in files) for v in videos)
    assert sum(f.endswith(".wav") for f in files) >= 1 and sum(f.endswith("comparison.png") for f in files) == len(videos)
    ev = next(r for r in children.values() if r.data.tags["physdiff.stage"] == "evaluate")
    assert ev.data.tags["physdiff.scored.classifier"].startswith("classifier-")
    assert ev.info.end_time - ev.info.start_time > 1000  # opened when the stage started: its duration is real


@pytest.mark.timeout(600)
def test_a_rerun_skips_every_stage(pipeline: dict) -> None:
    data = pipeline["data"]
    p = _run([str(REPO / "cluster/launch.py"), "--stage", "all", "--local", "--preset", "debug", "--data-root", str(data),
              *FAST], timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    out = p.stdout + p.stderr  # stage messages are log lines on stderr
    assert "[world] complete" in out and "[shards] complete" in out and "[evaluate] complete" in out
    assert "[generate] complete" in out and out.count("[index] complete") == 2
    assert "resumed from" not in p.stderr and "Epoch" not in p.stderr


@pytest.mark.timeout(600)
def test_generate_finds_its_runs_from_another_folder(pipeline: dict, tmp_path: Path) -> None:
    data = pipeline["data"]
    world = next((data / "world").iterdir())
    video = sorted(world.glob("*_denoised.mp4"))[0]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = next((data / "runs").glob("diffusion-ours-*"))
    # a run folder, from a folder that holds no data: its upstream runs are found under its own data root
    p = _run([str(REPO / "cluster/generate.py"), "--video", str(video), "--onsets", "0.5", "--out", "o1",
              "--run-from", str(run), "--steps", "2"], cwd=elsewhere)
    assert p.returncode == 0, p.stderr[-3000:]
    g = json.loads((elsewhere / "o1" / "generation.json").read_text())
    assert g["diffusion_run"] == str(run) and g["clips"][0]["retrieved"] and "(preset debug)" in p.stdout
    # a data folder (+ preset): this config's run in it; and --data-root alone: the one finished run of the variant
    for extra in (["--run-from", str(data), "--preset", "debug", *FAST], ["--data-root", str(data), "diffusion.variant=ours"]):
        p = _run([str(REPO / "cluster/generate.py"), "--video", str(video), "--onsets", "0.5", "--out", "o2",
                  "--steps", "2", *extra], cwd=elsewhere)
        if "--preset" in extra:
            assert p.returncode == 0, p.stderr[-3000:]
            assert json.loads((elsewhere / "o2" / "generation.json").read_text())["diffusion_run"] == str(run)
        else:  # several finished runs and no preset: one error line listing them, with their presets
            assert p.returncode == 2 and p.stderr.count("\n") == 1 and "preset debug" in p.stderr, p.stderr
            assert "choose one with --run-from" in p.stderr
    assert not (elsewhere / "data").exists()  # nothing was looked up or written relative to the working folder
