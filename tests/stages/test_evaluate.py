"""The evaluate stage: it only reads finished runs (the classifier stage's, the variants', their indexes), the
report holds every row and metric, and a missing run is one error naming it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from tests.stages.trained_runs import VARIANTS, config, train_upstream


@pytest.fixture(scope="module")
def runs(debug_data: dict) -> dict:
    return train_upstream(debug_data, VARIANTS, classifier=True)


@pytest.mark.timeout(600)
def test_report_has_every_row_and_metric_and_is_logged(debug_data: dict, runs: dict, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from physdiff.eval.metrics import METRIC_NAMES
    from physdiff.eval.report import read_report, read_table_csv
    from physdiff.stages.evaluate import run_evaluate

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = config(debug_data, ["tracking.enabled=true", f"tracking.tracking_uri={uri}"])
    done = run_evaluate(cfg, out=tmp_path / "eval", progress=False)
    rep = read_report(tmp_path / "eval")
    # Table 1: the recordings (the classifier's ceiling), NN retrieval and every diffusion variant.
    assert [r["variant"] for r in rep.table1] == ["ground_truth", *cfg.eval.variants]
    for r in rep.table1:
        for m in METRIC_NAMES:
            assert isinstance(r[m], float) and math.isfinite(r[m]), (r["variant"], m, r[m])
    gt = rep.table1[0]
    assert gt["fid"] < 1e-6 and gt["kl"] < 1e-9 and gt["spec_mse"] == 0.0 and gt["mrstft"] < 1e-6
    for r in rep.table1[1:]:
        assert r["spec_mse"] > 0 and 0 <= r["acc"] <= 1 and 0 <= r["balanced_acc"] <= 1
    # Table 3: retrieval, DDIM at each eval.ddim_steps and DDPM over all T (10 steps here).
    rows3 = [(r["method"], r["sampler"], r["steps"]) for r in rep.table3]
    assert rows3 == [("nn_retrieval", "retrieval", None), ("ours", "ddim", 2), ("ours", "ddpm", 10)]
    assert all(r["seconds_per_clip"] > 0 for r in rep.table3)
    # Table 1's "ours" row is the DDIM-2 sample (sampling.sampler=ddim, steps=2): the same numbers.
    ours1 = next(r for r in rep.table1 if r["variant"] == "ours")
    assert ours1["fid"] == rep.table3[1]["fid"]
    nn1 = next(r for r in rep.table1 if r["variant"] == "nn_retrieval")
    assert nn1["spec_mse"] == rep.table3[0]["spec_mse"]
    # Fig. 5b: the retrieved physics alone, with the residual, and the full model (the same numbers as Table 1)
    assert [r["variant"] for r in rep.fig5b] == list(cfg.eval.fig5b) == ["modal", "modal_residual", "ours"]
    assert rep.fig5b[2]["fid"] == ours1["fid"] and rep.fig5b[0]["spec_mse"] != rep.fig5b[1]["spec_mse"]
    # Every metric of every row carries a bootstrap interval around its value; ours is paired with every other row.
    for r in [*rep.table1, *rep.table3, *rep.fig5b]:
        for m in ("fid", "kid_mean", "kl", "acc", "balanced_acc", "spec_mse", "mrstft"):
            lo, hi = r["ci"][m]
            assert lo <= r[m] + 1e-9 and r[m] <= hi + 1e-9, (r.get("variant", r.get("method")), m, lo, r[m], hi)
    baselines = {p["baseline"] for p in rep.paired}
    assert baselines == {"nn_retrieval", "video", "video_label", "video_spec", "modal", "modal_residual"}
    assert {p["verdict"] for p in rep.paired} <= {"better", "worse", "tie"}
    assert 0 < rep.chance["balanced_acc"] <= 1 and "FID" not in rep.meta["fid"] and "classifier features" in rep.meta["fid"]
    assert len(read_table_csv(tmp_path / "eval" / "table1.csv")) == len(rep.table1)
    md = (tmp_path / "eval" / "report.md").read_text()
    assert all(v in md for v in cfg.eval.variants) and "Table 3" in md
    # It read the classifier stage's run (trained by the engine, weights exported), and trained nothing itself.
    assert done["meta"]["classifier_run"] == runs["classifier"].name and done["meta"]["classifier_train_clips"] > 0
    assert done["meta"]["runs"]["diffusion-ours"] == runs["diffusion"]["ours"].name
    # MLflow: an evaluate run holding every finite cell and the report files, tagged with the runs it scored.
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(done["mlflow_run_id"])
    assert run.data.tags["physdiff.stage"] == "evaluate"
    assert run.data.tags["physdiff.scored.classifier"] == runs["classifier"].name
    assert run.data.tags["physdiff.scored.index-ours"] == runs["index"]["ours"].name
    assert run.data.metrics["eval/table1/ours/fid"] == pytest.approx(ours1["fid"])
    arts = {a.path for a in client.list_artifacts(done["mlflow_run_id"], "eval")}
    assert {"eval/report.md", "eval/report.json", "eval/table1.csv", "eval/table3.csv"} <= arts


def test_classifier_is_reused_and_nn_retrieval_returns_training_audio(debug_data: dict, runs: dict) -> None:
    from physdiff.artifacts import read_export
    from physdiff.inference.load import load_classifier
    from physdiff.physics import spectrogram_target
    from physdiff.stages import train_stage
    from physdiff.stages.evaluate import load_split, nn_retrieval

    cfg = config(debug_data)
    weights = read_export(runs["classifier"], "classifier").file("model")
    stamp = weights.stat().st_mtime_ns
    again = train_stage(cfg, "classifier", cpu=True)  # the same config: the finished run is reused, not retrained
    assert again.status == "skipped" and again.run_dir == runs["classifier"] and weights.stat().st_mtime_ns == stamp
    m1, info = load_classifier(runs["classifier"])
    assert info["train_clips"] > 0 and info["backbone"] == cfg.classifier.backbone
    # The baseline's answer for a *training* clip is that clip itself (its nu is in the index).
    train = load_split(cfg, "train")
    gen = nn_retrieval(cfg, train)
    assert torch.allclose(gen.specs, spectrogram_target(train.audio, cfg.audio), atol=1e-6)


def test_evaluate_names_every_missing_run_and_trains_nothing(debug_data: dict, runs: dict, tmp_path: Path) -> None:
    from physdiff.errors import DataError
    from physdiff.stages.evaluate import run_evaluate

    cfg = config(debug_data, ["diffusion.width=16"])  # no diffusion run of any variant exists for this width
    runs_dir = Path(debug_data["root"]) / "runs"
    before = sorted(p.name for p in runs_dir.iterdir())
    with pytest.raises(DataError) as e:
        run_evaluate(cfg, out=tmp_path / "eval", progress=False)
    msg = str(e.value)
    assert "diffusion-ours" in msg and "index-ours" in msg and "diffusion-video_spec" in msg and "\n" not in msg
    assert "classifier (" not in msg  # the classifier run exists
    assert sorted(p.name for p in runs_dir.iterdir()) == before and not (tmp_path / "eval").exists()  # nothing trained


@pytest.mark.timeout(600)
def test_classifier_on_an_independent_world_shares_no_recording_with_the_test_split(debug_data: dict) -> None:
    """classifier.world_videos > 0: the metric classifier trains on its own generated world (another world.seed),
    made by its own pipeline steps, whose videos and clips are disjoint from the evaluated data's."""
    from physdiff import identity
    from physdiff.data.reader import make_loader
    from physdiff.launch.pipeline import pipeline_steps
    from physdiff.stages import run_function_stage, train_stage

    cfg = config(debug_data, ["classifier.world_videos=3", "classifier.world_seed=77"])
    steps = {s.name: s for s in pipeline_steps(cfg)}
    assert steps["classifier"].after == ("classifier-shards",) and steps["classifier-shards"].after == ("classifier-world",)
    for name in ("classifier-world", "classifier-shards"):
        run_function_stage(steps[name].stage, steps[name].config(cfg))
    root = identity.shards_dir(identity.config_for(cfg, "classifier"))
    assert root != identity.shards_dir(cfg) and (root / "summary.json").is_file()
    summary = json.loads((root / "summary.json").read_text())
    assert summary["splits"]["train"]["written"] > 0

    def keys(shards: Path, split: str) -> set[str]:
        return {k for b in make_loader(shards, split, batch_size=8, mode="eval") for k in b["key"]}

    own = keys(identity.shards_dir(cfg), "train") | keys(identity.shards_dir(cfg), "test")
    assert keys(root, "train") and not keys(root, "train") & own  # other videos: no shared clip key
    r = train_stage(cfg, "classifier", cpu=True)
    from physdiff.artifacts import read_export

    man = read_export(r.run_dir, "classifier").manifest
    assert man["shards"] == str(root) and man["train_clips"] == summary["splits"]["train"]["written"]
    stamp = (root / "summary.json").stat().st_mtime_ns
    run_function_stage("shards", steps["classifier-shards"].config(cfg))  # complete: nothing rebuilt
    assert (root / "summary.json").stat().st_mtime_ns == stamp
