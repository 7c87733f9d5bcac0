"""The evaluation report of a run: Table 1 (model variants) and Table 3 (retrieval baseline and
sampler steps), written as ``report.md`` + ``report.json`` + ``table1.csv`` + ``table3.csv``, and
logged to MLflow.

Rows are plain dicts. A Table 1 row is ``{"variant": name, <every metric of METRIC_NAMES>}``; a
Table 3 row is ``{"method": name, "sampler": "ddim" | "ddpm" | "retrieval", "steps": int | None,
<every metric>, "seconds_per_clip": float}``. Any row may carry ``"ci": {metric: [lo, hi]}``, its 95 %
bootstrap intervals over clips (:mod:`physdiff.eval.bootstrap`), shown as ``value [lo, hi]`` and written
as ``<metric>_lo`` / ``<metric>_hi`` CSV columns. Optional sections: ``fig5b`` (Table 1-style rows of the
paper's Fig. 5b), ``paired`` (``{"row", "baseline", "metric", "diff", "lo", "hi", "verdict"}``: the paired
bootstrap of a row against a baseline on the same clips) and ``chance`` (what a constant guess scores).
A metric that could not be computed is NaN (``null`` in JSON, empty in CSV, "n/a" in Markdown): a column
is never dropped silently::

    rows1 = [table1_row("ours", metrics_ours), table1_row("video", metrics_video)]
    rows3 = [table3_row("nn_retrieval", "retrieval", None, m_nn), table3_row("ours", "ddim", 50, m, 0.8)]
    paths = write_report(run_dir, rows1, rows3, meta={"run_id": rid, "preset": "tiny"})
    log_report_to_mlflow(run_dir, mlflow_run_id)
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from physdiff.errors import DataError
from physdiff.fileio import atomic_write_text
from physdiff.eval.metrics import METRIC_NAMES

__all__ = [
    "REPORT_FORMAT",
    "TABLE1_COLUMNS",
    "TABLE3_COLUMNS",
    "Report",
    "table1_row",
    "table3_row",
    "write_report",
    "read_report",
    "read_table_csv",
    "log_report_to_mlflow",
]

REPORT_FORMAT = "physdiff-eval-report/2"
TABLE1_COLUMNS: tuple[str, ...] = ("variant",) + METRIC_NAMES
TABLE3_COLUMNS: tuple[str, ...] = ("method", "sampler", "steps") + METRIC_NAMES + ("seconds_per_clip",)
_TEXT_COLUMNS = {"variant", "method", "sampler"}
_SAMPLERS = ("ddim", "ddpm", "retrieval")

# Markdown headers, with the direction that is better (paper Table 1 convention).
_HEADERS = {
    "variant": "Variant",
    "method": "Method",
    "sampler": "Sampler",
    "steps": "Steps",
    "fid": "FID ↓",
    "kid": "KID ↓",
    "kl": "KL ↓",
    "acc": "Acc. (%) ↑",
    "balanced_acc": "Bal. acc. (%) ↑",
    "spec_mse": "Spec. MSE ↓",
    "mrstft": "MR-STFT ↓",
    "seconds_per_clip": "s / clip",
}


@dataclass
class Report:
    table1: list[dict[str, Any]]
    table3: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)
    fig5b: list[dict[str, Any]] = field(default_factory=list)
    paired: list[dict[str, Any]] = field(default_factory=list)
    chance: dict[str, Any] = field(default_factory=dict)


def _metrics_part(metrics: dict[str, float], where: str) -> dict[str, float]:
    missing = [m for m in METRIC_NAMES if m not in metrics]
    if missing:
        raise ValueError(f"{where}: metrics missing {missing} (use NaN for a metric that cannot be computed)")
    return {m: float(metrics[m]) for m in METRIC_NAMES}


def table1_row(variant: str, metrics: dict[str, float]) -> dict[str, Any]:
    """One Table 1 row: a model variant and all its metrics."""
    return {"variant": str(variant), **_metrics_part(metrics, f"Table 1 row {variant!r}")}


def table3_row(
    method: str, sampler: str, steps: int | None, metrics: dict[str, float], seconds_per_clip: float = math.nan
) -> dict[str, Any]:
    """One Table 3 row: retrieval baseline, or a diffusion model with a sampler and step count."""
    if sampler not in _SAMPLERS:
        raise ValueError(f"Table 3 sampler must be one of {_SAMPLERS}, got {sampler!r}")
    if sampler != "retrieval" and (steps is None or int(steps) < 1):
        raise ValueError(f"Table 3 row {method!r}: a {sampler} row needs a positive step count, got {steps!r}")
    return {
        "method": str(method),
        "sampler": sampler,
        "steps": None if steps is None else int(steps),
        **_metrics_part(metrics, f"Table 3 row {method!r}"),
        "seconds_per_clip": float(seconds_per_clip),
    }


def _validate(rows: list[dict[str, Any]], columns: tuple[str, ...], name: str) -> None:
    for i, row in enumerate(rows):
        missing = [c for c in columns if c not in row]
        extra = [c for c in row if c not in columns and c != "ci"]
        if missing or extra:
            raise ValueError(f"{name} row {i} ({row.get(columns[0])!r}): missing columns {missing}, unknown {extra}")
    ids = [tuple(r[c] for c in columns[: 3 if name == "Table 3" else 1]) for r in rows]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{name} has duplicate rows: {ids}")


def _json_value(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _fmt(col: str, v: Any) -> str:
    if v is None:
        return "—"
    if col in _TEXT_COLUMNS or col == "steps":
        return str(v)
    if isinstance(v, float) and not math.isfinite(v):
        return "n/a"
    if col in ("acc", "balanced_acc"):
        return f"{100.0 * v:.2f}"
    if col in ("fid", "kl", "seconds_per_clip"):
        return f"{v:.2f}" if abs(v) >= 0.01 or v == 0 else f"{v:.2e}"
    return f"{v:.4f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"


def _with_ci(col: str, r: dict[str, Any]) -> str:
    cell = _fmt(col, r[col])
    ci = (r.get("ci") or {}).get(col)
    if ci and all(isinstance(x, (int, float)) and math.isfinite(x) for x in ci):
        cell += f" [{_fmt(col, ci[0])}, {_fmt(col, ci[1])}]"
    return cell


def _markdown_table(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    # KID is shown as one "mean ± std" column (the std is over KID's random subsets), as in the paper's tables.
    shown: list[str] = []
    for c in columns:
        if c == "kid_mean":
            shown.append("kid")
        elif c != "kid_std":
            shown.append(c)
    lines = ["| " + " | ".join(_HEADERS[c] for c in shown) + " |", "|" + "|".join("---" for _ in shown) + "|"]
    for r in rows:
        cells = []
        for c in shown:
            if c == "kid":
                m, s = r["kid_mean"], r["kid_std"]
                cell = "n/a" if not math.isfinite(m) else f"{_fmt('kid_mean', m)} ± {_fmt('kid_std', s)}"
                ci = (r.get("ci") or {}).get("kid_mean")
                if ci and math.isfinite(m) and all(math.isfinite(x) for x in ci):
                    cell += f" [{_fmt('kid_mean', ci[0])}, {_fmt('kid_mean', ci[1])}]"
                cells.append(cell)
            else:
                cells.append(_with_ci(c, r))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _csv_columns(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> list[str]:
    cis = sorted({m for r in rows for m in (r.get("ci") or {})}, key=list(columns).index)
    return list(columns) + [f"{m}_{e}" for m in cis for e in ("lo", "hi")]


def _csv_text(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    import io

    buf = io.StringIO()
    names = _csv_columns(rows, columns)
    w = csv.DictWriter(buf, fieldnames=names, lineterminator="\n")
    w.writeheader()
    for r in rows:
        flat = {c: ("" if _json_value(r[c]) is None else r[c]) for c in columns}
        for m, (lo, hi) in (r.get("ci") or {}).items():
            flat[f"{m}_lo"] = "" if _json_value(lo) is None else lo
            flat[f"{m}_hi"] = "" if _json_value(hi) is None else hi
        w.writerow({c: flat.get(c, "") for c in names})
    return buf.getvalue()


def _json_row(r: dict[str, Any], columns: tuple[str, ...]) -> dict[str, Any]:
    out = {c: _json_value(r[c]) for c in columns}
    if r.get("ci"):
        out["ci"] = {m: [_json_value(float(x)) for x in v] for m, v in r["ci"].items()}
    return out


def _paired_markdown(paired: list[dict[str, Any]]) -> str:
    """One line per (row, baseline): each metric's paired difference with its interval and verdict."""
    by: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for p in paired:
        by.setdefault((p["row"], p["baseline"]), {})[p["metric"]] = p
    metrics = [m for m in METRIC_NAMES if m != "kid_std" and any(m in v for v in by.values())]
    lines = ["| Row vs baseline | " + " | ".join(_HEADERS["kid" if m == "kid_mean" else m] for m in metrics) + " |",
             "|" + "|".join("---" for _ in range(len(metrics) + 1)) + "|"]
    for (row, base), ms in by.items():
        cells = []
        for m in metrics:
            p = ms.get(m)
            if p is None or p["diff"] is None or not math.isfinite(p["diff"]):
                cells.append("n/a")
                continue
            lo, hi = p.get("lo"), p.get("hi")
            ci = f" [{_fmt(m, lo)}, {_fmt(m, hi)}]" if lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi) else ""
            cells.append(f"{_fmt(m, p['diff'])}{ci} {p['verdict']}")
        lines.append(f"| {row} vs {base} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(
    run_dir: str | Path,
    table1: list[dict[str, Any]],
    table3: list[dict[str, Any]],
    meta: dict[str, Any] | None = None,
    *,
    fig5b: list[dict[str, Any]] | None = None,
    paired: list[dict[str, Any]] | None = None,
    chance: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write ``report.md``, ``report.json``, ``table1.csv``, ``table3.csv`` (+ ``fig5b.csv``) into ``run_dir``.

    Every row must carry every column (see :data:`TABLE1_COLUMNS`, :data:`TABLE3_COLUMNS`); build
    rows with :func:`table1_row` / :func:`table3_row`. Returns the written paths by name.
    """
    fig5b, paired, chance = list(fig5b or []), list(paired or []), dict(chance or {})
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _validate(table1, TABLE1_COLUMNS, "Table 1")
    _validate(table3, TABLE3_COLUMNS, "Table 3")
    _validate(fig5b, TABLE1_COLUMNS, "Fig. 5b")
    meta = dict(meta or {})
    meta.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))

    doc = {
        "format": REPORT_FORMAT,
        "meta": meta,
        "columns": {"table1": list(TABLE1_COLUMNS), "table3": list(TABLE3_COLUMNS)},
        "table1": [_json_row(r, TABLE1_COLUMNS) for r in table1],
        "table3": [_json_row(r, TABLE3_COLUMNS) for r in table3],
        "fig5b": [_json_row(r, TABLE1_COLUMNS) for r in fig5b],
        "paired": [{k: _json_value(v) for k, v in pr.items()} for pr in paired],
        "chance": {k: _json_value(v) for k, v in chance.items()},
    }
    paths = {
        "json": run_dir / "report.json",
        "md": run_dir / "report.md",
        "table1_csv": run_dir / "table1.csv",
        "table3_csv": run_dir / "table3.csv",
    }
    atomic_write_text(paths["json"], json.dumps(doc, indent=2, allow_nan=False) + "\n")
    atomic_write_text(paths["table1_csv"], _csv_text(table1, TABLE1_COLUMNS))
    atomic_write_text(paths["table3_csv"], _csv_text(table3, TABLE3_COLUMNS))
    if fig5b:
        paths["fig5b_csv"] = atomic_write_text(run_dir / "fig5b.csv", _csv_text(fig5b, TABLE1_COLUMNS))

    md = ["# Evaluation report", ""]
    for k in sorted(meta):
        md.append(f"- **{k}**: {meta[k]}")
    interval_note = (" Brackets: 95 % bootstrap interval over the test clips." if any(r.get("ci") for r in table1) else "")
    chance_note = ""
    if chance:
        chance_note = (f" Chance (a constant guess): accuracy {100 * chance.get('acc', math.nan):.2f} % (the majority "
                       f"class's share), balanced accuracy {100 * chance.get('balanced_acc', math.nan):.2f} % "
                       f"(1 / {chance.get('classes', '?')} classes present). `ground_truth` is the ceiling: the "
                       f"recordings themselves.")
    md += [
        "",
        "## Table 1: model variants on the test split",
        "",
        "FID / KID on the spectrogram classifier's features (generated vs ground truth); KL = "
        "KL(p_gt ‖ p_gen) of its softmax per clip, averaged; accuracy of its prediction on the "
        "generated clip against the material label." + interval_note + chance_note,
        "",
        _markdown_table(table1, TABLE1_COLUMNS),
        "",
    ]
    if paired:
        md += ["### Paired differences (row − baseline on the same test clips)", "",
               "95 % paired bootstrap interval; *better* / *worse* when it excludes 0, else *tie*.", "",
               _paired_markdown(paired), ""]
    md += ["## Table 3: retrieval baselines and sampler steps", "", _markdown_table(table3, TABLE3_COLUMNS), ""]
    if fig5b:
        md += ["## Fig. 5b: each component (retrieval by ν throughout)", "", _markdown_table(fig5b, TABLE1_COLUMNS), ""]
    atomic_write_text(paths["md"], "\n".join(md))
    return paths


def read_report(run_dir: str | Path) -> Report:
    """Parse ``report.json`` back (null -> NaN); a missing or foreign file is a DataError naming it."""
    path = Path(run_dir) / "report.json"
    if not path.is_file():
        raise DataError(f"no evaluation report at {path}")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"{path} is not valid JSON: {e}") from None
    if doc.get("format") != REPORT_FORMAT:
        raise DataError(f"{path}: unknown report format {doc.get('format')!r}")

    def _back(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{c: (math.nan if v is None and c not in ("steps",) else v) for c, v in r.items()} for r in rows]

    return Report(_back(doc["table1"]), _back(doc["table3"]), doc.get("meta", {}), _back(doc.get("fig5b", [])),
                  doc.get("paired", []), doc.get("chance", {}))


def read_table_csv(path: str | Path) -> list[dict[str, Any]]:
    """Read a table CSV back with numbers as floats (``steps`` as int or None, empty -> NaN)."""
    out = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            parsed: dict[str, Any] = {}
            for c, v in row.items():
                if c in _TEXT_COLUMNS:
                    parsed[c] = v
                elif c == "steps":
                    parsed[c] = int(v) if v else None
                else:
                    parsed[c] = float(v) if v else math.nan
            out.append(parsed)
    return out


def _metric_key(*parts: Any) -> str:
    # MLflow metric names allow alphanumerics, "_", "-", ".", " ", "/".
    return "/".join(re.sub(r"[^A-Za-z0-9_.\- ]", "_", str(p)) for p in parts)


def log_report_to_mlflow(
    run_dir: str | Path, run_id: str, tracking_uri: str | None = None, artifact_path: str = "eval"
) -> bool:
    """Log every finite table cell as an MLflow metric and the report files as artifacts.

    Metric names: ``eval/table1/<variant>/<metric>`` and ``eval/table3/<method>-<sampler><steps>/<metric>``.
    A tracking failure is a warning (the report on disk is the record); returns True on success.
    """
    run_dir = Path(run_dir)
    report = read_report(run_dir)
    try:
        import time

        from mlflow.entities import Metric
        from mlflow.tracking import MlflowClient

        ts = int(time.time() * 1000)
        metrics: list[Metric] = []
        for r in report.table1:
            for m in METRIC_NAMES:
                if isinstance(r[m], float) and math.isfinite(r[m]):
                    metrics.append(Metric(_metric_key("eval", "table1", r["variant"], m), r[m], ts, 0))
        for r in report.table3:
            tag = f"{r['method']}-{r['sampler']}{'' if r['steps'] is None else r['steps']}"
            for m in METRIC_NAMES + ("seconds_per_clip",):
                if isinstance(r[m], float) and math.isfinite(r[m]):
                    metrics.append(Metric(_metric_key("eval", "table3", tag, m), r[m], ts, 0))
        client = MlflowClient(tracking_uri=tracking_uri)
        for s in range(0, len(metrics), 1000):  # MLflow's log_batch limit
            client.log_batch(run_id, metrics=metrics[s : s + 1000])
        for name in ("report.md", "report.json", "table1.csv", "table3.csv"):
            client.log_artifact(run_id, str(run_dir / name), artifact_path)
        return True
    except Exception as e:  # noqa: BLE001 -- tracking must never lose a computed report
        warnings.warn(f"could not log the evaluation report {run_dir} to MLflow run {run_id}: {type(e).__name__}: {e}", stacklevel=2)
        return False
