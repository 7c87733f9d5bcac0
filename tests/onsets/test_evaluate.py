"""The scoring itself, against hand-computed answers: one-to-one matching within +-1 frame, categories, intervals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from physdiff.errors import DataError
from physdiff.onsets.detect import Onset
from physdiff.onsets.evaluate import bootstrap_ci, format_table, match, score_video, summarise, truth_events

FPS = 30000 / 1001


def _physics(path: Path, events: list[tuple[float, str]]) -> Path:
    path.write_text(json.dumps({"fps": [30000, 1001], "events": [
        {"contact_time_s": t, "action": a, "reaction": "static"} for t, a in events]}))
    return path


def test_matching_is_one_to_one_within_one_frame() -> None:
    f = 1 / FPS
    truth = [1.0, 2.0]
    # two detections near the first event: only the closer one matches it; 2 frames off is no match
    assert match([1.0 + 0.2 * f, 1.0 - 0.9 * f, 2.0 + 2.1 * f], truth, FPS) == [(0, 0)]
    assert match([2.0 + 0.99 * f], truth, FPS) == [(0, 1)]  # frame 59 -> 60: one frame apart
    assert match([], truth, FPS) == [] and match([1.0], [], FPS) == []


def test_categories_precision_recall_and_errors(tmp_path: Path) -> None:
    phys = _physics(tmp_path / "v_physics.json", [(1.0, "hit"), (2.0, "hit"), (2.15, "hit"), (3.0, "scratch"), (5.0, "hit")])
    truth, fps = truth_events(phys)
    assert [e.category for e in truth] == ["hit", "close", "close", "scratch", "hit"]
    det = [Onset(1.004, 29, 0.9), Onset(2.0, 59, 0.9), Onset(3.01, 90, 0.8), Onset(4.3, 128, 0.7)]  # 4.3: unmatched, nearest the hit at 5.0
    s = score_video(det, truth, fps)
    assert s["hit"] == {"events": 2, "matched": 1, "detections": 2, "true_detections": 1, "errors_ms": [pytest.approx(4.0)]}
    assert (s["close"]["events"], s["close"]["matched"], s["close"]["detections"]) == (2, 1, 1)
    assert (s["scratch"]["matched"], s["scratch"]["errors_ms"]) == (1, [pytest.approx(10.0)])
    a = summarise([s])["all"]
    assert (a["events"], a["detections"], a["matched"]) == (5, 4, 3)
    assert a["recall"] == pytest.approx(0.6) and a["precision"] == pytest.approx(0.75)
    assert a["median_ms"] == pytest.approx(4.0)


def test_intervals_resample_videos_and_table_prints_them(tmp_path: Path) -> None:
    phys = _physics(tmp_path / "v_physics.json", [(1.0, "hit"), (2.0, "hit")])
    truth, fps = truth_events(phys)
    perfect = score_video([Onset(1.0, 29, 1.0), Onset(2.0, 59, 1.0)], truth, fps)
    half = score_video([Onset(1.0, 29, 1.0)], truth, fps)
    ci = bootstrap_ci([perfect, half], n=500)
    lo, hi = ci["all"]["recall"]
    assert lo == pytest.approx(0.5) and hi == pytest.approx(1.0)  # all-"half" and all-"perfect" draws both occur
    rep = {"summary": summarise([perfect, half]), "ci": ci}
    table = format_table({"w": rep})
    assert "| w | all | 4 | 3 | 1.000 [1.000, 1.000] | 0.750 [0.500, 1.000] |" in table


def test_bad_ground_truth_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "x_physics.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="x_physics.json"):
        truth_events(bad)
