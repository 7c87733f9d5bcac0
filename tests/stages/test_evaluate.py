"""The evaluate stage: the classifier is trained once and reused; the report holds every row and metric."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from tests.stages.trained_runs import VARIANTS, config, train_upstream


@pytest.fixture(scope="module")
def runs(debug_data: dict) -> dict:
    return train_upstream(debug_data, VARIANTS)


@pytest.mark.timeout(600)
def test_report_has_every_row_and_metric_and_is_logged(debug_data: dict, runs: dict, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from physdiff.eval.metrics import METRIC_NAMES
    from physdiff.eval.report import read_report, read_table_csv
    from physdiff.stages.evaluate import classifier_dir, run_evaluate

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
    # Table 1's "ours" row is the DDIM-2 sample (eval.sampler=ddim, sample_steps=2): the same numbers.
    ours1 = next(r for r in rep.table1 if r["variant"] == "ours")
    assert ours1["fid"] == rep.table3[1]["fid"]
    nn1 = next(r for r in rep.table1 if r["variant"] == "nn_retrieval")
    assert nn1["spec_mse"] == rep.table3[0]["spec_mse"]
    assert len(read_table_csv(tmp_path / "eval" / "table1.csv")) == len(rep.table1)
    md = (tmp_path / "eval" / "report.md").read_text()
    assert all(v in md for v in cfg.eval.variants) and "Table 3" in md
    # The classifier was saved where the next evaluation finds it.
    cdir = classifier_dir(cfg)
    assert (cdir / "classifier.safetensors").is_file() and json.loads((cdir / "classifier.json").read_text())["train_clips"] > 0
    # MLflow: an evaluate run holding every finite cell and the report files.
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(done["mlflow_run_id"])
    assert run.data.tags["physdiff.stage"] == "evaluate"
    assert run.data.metrics["eval/table1/ours/fid"] == pytest.approx(ours1["fid"])
    arts = {a.path for a in client.list_artifacts(done["mlflow_run_id"], "eval")}
    assert {"eval/report.md", "eval/report.json", "eval/table1.csv", "eval/table3.csv"} <= arts


def test_classifier_is_reused_and_nn_retrieval_returns_training_audio(debug_data: dict, runs: dict) -> None:
    from physdiff.physics import spectrogram_target
    from physdiff.stages.evaluate import classifier_dir, load_split, nn_retrieval, train_classifier

    cfg = config(debug_data)
    path = classifier_dir(cfg) / "classifier.safetensors"
    m1, info1 = train_classifier(cfg, torch.device("cpu"), progress=False)  # trained (or found) once ...
    stamp = path.stat().st_mtime_ns
    m2, info2 = train_classifier(cfg, torch.device("cpu"), progress=False)  # ... then reused
    assert info1 == info2 and path.stat().st_mtime_ns == stamp
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)
    # The baseline's answer for a *training* clip is that clip itself (its nu is in the index).
    train = load_split(cfg, "train")
    gen = nn_retrieval(cfg, train)
    assert torch.allclose(gen.specs, spectrogram_target(train.audio, cfg.audio), atol=1e-6)


@pytest.mark.timeout(600)
def test_classifier_on_an_independent_world_shares_no_recording_with_the_test_split(debug_data: dict) -> None:
    """eval.classifier_world_videos > 0: the metric classifier trains on its own generated world (another
    seed), built once, whose videos and clips are disjoint from the evaluated data's."""
    from physdiff.data.reader import make_loader
    from physdiff.stages import shards_dir
    from physdiff.stages.evaluate import classifier_shards, train_classifier

    cfg = config(debug_data, ["eval.classifier_world_videos=3", "eval.classifier_world_seed=77"])
    root = classifier_shards(cfg, progress=False)
    assert root != shards_dir(cfg) and (root / "summary.json").is_file()
    summary = json.loads((root / "summary.json").read_text())
    assert summary["splits"]["train"]["written"] > 0

    def keys(shards: Path, split: str) -> set[str]:
        return {k for b in make_loader(shards, split, batch_size=8, mode="eval") for k in b["key"]}

    own = keys(shards_dir(cfg), "train") | keys(shards_dir(cfg), "test")
    assert keys(root, "train") and not keys(root, "train") & own  # other videos: no shared clip key
    _, info = train_classifier(cfg, torch.device("cpu"), progress=False)
    assert info["shards"] == str(root) and info["train_clips"] == summary["splits"]["train"]["written"]
    stamp = (root / "summary.json").stat().st_mtime_ns
    assert classifier_shards(cfg, progress=False) == root and (root / "summary.json").stat().st_mtime_ns == stamp
