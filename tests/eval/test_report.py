"""The evaluation report: every row and metric survives report.json, the CSVs and report.md, and
is logged to MLflow (a tracking failure is a warning)."""

from __future__ import annotations

import math
import warnings

import pytest

from physdiff.eval.metrics import METRIC_NAMES
from physdiff.eval.report import (
    TABLE1_COLUMNS,
    TABLE3_COLUMNS,
    log_report_to_mlflow,
    read_report,
    read_table_csv,
    table1_row,
    table3_row,
    write_report,
)

VARIANTS = ("nn_retrieval", "video", "video_label", "video_spec", "ours")


def _metrics(i: float) -> dict[str, float]:
    # Distinct, recognisable values per row and metric (not round numbers, to catch formatting loss).
    return {m: 0.1234567 * (i + 1) + j * 1.01 for j, m in enumerate(METRIC_NAMES)}


def _tables():
    t1 = [table1_row(v, _metrics(i)) for i, v in enumerate(VARIANTS)]
    t1[1]["mrstft"] = math.nan  # a metric that could not be computed
    t3 = [table3_row("nn_retrieval", "retrieval", None, _metrics(10), 0.002)]
    t3 += [table3_row("ours", "ddim", s, _metrics(20 + s), 0.01 * s) for s in (10, 25, 50, 200)]
    t3 += [table3_row("ours", "ddpm", 1000, _metrics(99), 10.0)]
    return t1, t3


def _same(a, b) -> bool:
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return a == b if not isinstance(a, float) else b == pytest.approx(a, rel=1e-12)


def test_report_contains_every_row_and_metric(tmp_path):
    t1, t3 = _tables()
    paths = write_report(tmp_path, t1, t3, meta={"run_id": "r1", "preset": "tiny"})
    assert {p.name for p in paths.values()} == {"report.json", "report.md", "table1.csv", "table3.csv"}

    rep = read_report(tmp_path)
    assert rep.meta["run_id"] == "r1" and rep.meta["created"]
    for got, want, cols in ((rep.table1, t1, TABLE1_COLUMNS), (rep.table3, t3, TABLE3_COLUMNS)):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert set(g) == set(cols)
            assert all(_same(w[c], g[c]) for c in cols), (g, w)
    for name, want, cols in (("table1.csv", t1, TABLE1_COLUMNS), ("table3.csv", t3, TABLE3_COLUMNS)):
        got = read_table_csv(tmp_path / name)
        assert [list(r) for r in got] == [list(cols)] * len(want)
        assert all(_same(w[c], g[c]) for g, w in zip(got, want) for c in cols)

    md = (tmp_path / "report.md").read_text()
    for v in VARIANTS:
        assert f"| {v} |" in md
    for header in ("FID", "KID", "KL", "Acc. (%)", "Bal. acc. (%)", "Spec. MSE", "MR-STFT", "s / clip"):
        assert header in md
    assert "| ours | ddim | 50 |" in md and "| ours | ddpm | 1000 |" in md and "| nn_retrieval | retrieval | — |" in md
    assert "n/a" in md  # the NaN cell
    ours = t1[-1]
    assert f"{100 * ours['acc']:.2f}" in md and f"{ours['fid']:.2f}" in md and " ± " in md


def test_rows_are_validated(tmp_path):
    with pytest.raises(ValueError, match="metrics missing"):
        table1_row("ours", {"fid": 1.0})
    with pytest.raises(ValueError, match="positive step count"):
        table3_row("ours", "ddim", None, _metrics(0))
    with pytest.raises(ValueError, match="sampler"):
        table3_row("ours", "euler", 10, _metrics(0))
    t1, t3 = _tables()
    with pytest.raises(ValueError, match="duplicate"):
        write_report(tmp_path, t1 + t1[:1], t3)
    bad = dict(t1[0])
    del bad["kl"]
    with pytest.raises(ValueError, match="missing columns"):
        write_report(tmp_path, [bad], t3)


def test_log_report_to_mlflow(tmp_path):
    from mlflow.tracking import MlflowClient

    t1, t3 = _tables()
    write_report(tmp_path / "run", t1, t3)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    run = client.create_run(client.create_experiment("eval-test", artifact_location=str(tmp_path / "art")))
    assert log_report_to_mlflow(tmp_path / "run", run.info.run_id, tracking_uri=uri)
    metrics = client.get_run(run.info.run_id).data.metrics
    assert metrics["eval/table1/ours/fid"] == pytest.approx(t1[-1]["fid"])
    assert metrics["eval/table3/ours-ddim50/kl"] == pytest.approx(t3[3]["kl"])
    assert metrics["eval/table3/nn_retrieval-retrieval/acc"] == pytest.approx(t3[0]["acc"])
    assert "eval/table1/video/mrstft" not in metrics  # NaN cells are not logged
    finite = sum(1 for r in t1 for m in METRIC_NAMES if math.isfinite(r[m]))
    finite += sum(1 for r in t3 for m in METRIC_NAMES + ("seconds_per_clip",) if math.isfinite(r[m]))
    assert len(metrics) == finite
    arts = sorted(a.path for a in client.list_artifacts(run.info.run_id, "eval"))
    assert arts == ["eval/report.json", "eval/report.md", "eval/table1.csv", "eval/table3.csv"]
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        assert not log_report_to_mlflow(tmp_path / "run", "no-such-run", tracking_uri=uri)
    assert any("could not log the evaluation report" in str(x.message) for x in w)
