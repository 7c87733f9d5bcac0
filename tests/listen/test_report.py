"""``listen report`` (Table 2) on answers entered through the store, checked against counts made here, and
the command's one-line errors for bad input."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from physdiff.listen.report import format_report, study_report
from physdiff.listen.stats import krippendorff_alpha_nominal, wilson_interval
from physdiff.listen.store import AnswerStore
from physdiff.listen.study import create_study, participant_plan
from tests.listen.helpers import create, listen

METHODS = ("ours", "video", "video_label", "video_spec")


@pytest.fixture(scope="module")
def answered(listen_runs: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A study (main block of 4 + the ablation of 3) answered by 12 simulated participants; the 12th stops half-way.

    Participants pick by preference weights, letters looked up in their recorded order; every click is
    also kept here as (participant, block, item, question, method) to count against."""
    study = create_study(tmp_path_factory.mktemp("report") / "s", [(m, listen_runs["runs"][m]) for m in METHODS],
                         log=lambda m: None)
    store = AnswerStore.open(study.answers_path, study.study_id)
    rng = np.random.default_rng(0)
    weights = {"matching": {"ours": 5, "video": 1, "video_label": 2, "video_spec": 2},
               "quality": {"ours": 3, "video": 2, "video_label": 2, "video_spec": 3}}
    clicks = []
    for k in range(12):
        p = store.add_participant(participant_plan(study, 100 + k), seed=100 + k, source="start")
        screens = store.screens(p.id)
        for s in screens[: len(screens) // 2] if k == 11 else screens:
            choices = {}
            for q in ("matching", "quality"):
                w = np.array([weights[q][m] for m in s.order], float)
                j = int(rng.choice(len(s.order), p=w / w.sum()))
                choices[q] = chr(65 + j)
                clicks.append((p.id, s.block, s.item, q, s.order[j]))
            played = list(s.letters) if k != 0 else list(s.letters[:1])  # participant 0 skipped the tracks
            store.submit(p.id, s.position, choices, questions=("matching", "quality"), elapsed_ms=3000 + k,
                         played=played)
    return {"study": study, "store": store, "clicks": clicks}


def test_table2_counts_rates_intervals_agreement(answered: dict) -> None:
    study, store, clicks = answered["study"], answered["store"], answered["clicks"]
    rep = study_report(study, store, n_boot=1000)
    assert rep["participants"] == {"joined": 12, "complete": 11, "in_report": 12, "complete_only": False}
    assert [b["block"] for b in rep["blocks"]] == ["main", "ablation"]
    for block in rep["blocks"]:
        for q in block["questions"]:
            mine = [c for c in clicks if c[1] == block["block"] and c[3] == q["question"]]
            n = len(mine)
            count = Counter(c[4] for c in mine)
            assert q["answers"] == n and q["chance"] == pytest.approx(1 / len(block["methods"]))
            for row in q["methods"]:
                k = count[row["method"]]
                assert (row["selected"], row["answers"]) == (k, n) and row["rate"] == pytest.approx(k / n)
                assert row["wilson95"] == pytest.approx(list(wilson_interval(k, n)))
                assert row["bootstrap95"][0] <= k / n <= row["bootstrap95"][1]
            units: dict = {}
            for c in mine:
                units.setdefault(c[2], []).append(c[4])
            agr = krippendorff_alpha_nominal(list(units.values()))
            assert q["agreement"]["krippendorff_alpha"] == pytest.approx(agr.alpha)
            assert q["agreement"]["observed"] == pytest.approx(agr.observed)
            assert q["agreement"]["uniform"] == pytest.approx(1 / len(block["methods"]))
            # the 12th participant answered only some items: unequal raters, so no Fleiss' kappa unless equal
            equal = len({len(v) for v in units.values()}) == 1
            assert (q["agreement"]["fleiss_kappa"] is not None) == equal
            assert sum(q["by_position"].values()) == n
            assert q["answers_without_every_track_played"] == sum(1 for c in mine if c[0] == 1)
    # Participant 1 (id 1) is the one who played only track A: the report's check counts exactly their answers.
    text = format_report(rep)
    assert "## Table 2: selection rate per method (4 methods per screen, chance 25.0 %)" in text
    assert "## Perceptual ablation: video vs video_label vs ours (3 methods per screen, chance 33.3 %)" in text
    main_match = rep["blocks"][0]["questions"][0]["methods"][0]
    assert (f"| ours | {100 * main_match['rate']:.1f} % ({main_match['selected']}/{main_match['answers']}) | "
            f"{100 * main_match['wilson95'][0]:.1f}–{100 * main_match['wilson95'][1]:.1f} |") in text
    assert "Krippendorff's α" in text and "choices by position" in text


def test_complete_only_drops_the_participant_who_stopped(answered: dict) -> None:
    rep = study_report(answered["study"], answered["store"], n_boot=200, complete_only=True)
    assert rep["participants"]["in_report"] == 11
    full = study_report(answered["study"], answered["store"], n_boot=200)
    assert rep["answers"] < full["answers"]
    assert rep["answers"] == 11 * len(answered["study"].items) * len(answered["study"].blocks) * 2
    # With every item rated by the same 11 participants, Fleiss' kappa is defined everywhere.
    assert all(q["agreement"]["fleiss_kappa"] is not None for b in rep["blocks"] for q in b["questions"])


def test_report_command_and_json(answered: dict, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    p = listen("report", "--study", str(answered["study"].root), "--json", str(out), "--bootstrap", "500")
    assert p.returncode == 0, p.stderr
    rep = json.loads(out.read_text())
    assert p.stdout == format_report(rep)
    q = listen("--report", "--study", str(answered["study"].root), "--bootstrap", "500")  # the --report spelling
    assert q.returncode == 0 and q.stdout == p.stdout  # same seed: the same bootstrap intervals


def _one_error_line(p) -> str:
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    return lines[0]


def test_cli_errors_are_one_line(listen_runs: dict, tmp_path: Path) -> None:
    ours = str(listen_runs["runs"]["ours"])
    line = _one_error_line(listen("create", "--study", str(tmp_path / "a"), "--run", f"ours={ours}",
                                  "--run", f"video={tmp_path / 'missing'}"))
    assert "generate run folder not found" in line and str(tmp_path / "missing") in line
    from tests.listen.fixtures import make_generate_run

    lone = make_generate_run(tmp_path / "lone", "video", {"vid_0042": listen_runs["sources"]["vid_0000"]})
    line = _one_error_line(listen("create", "--study", str(tmp_path / "b"), "--run", ours, "--run", str(lone)))
    assert "no test video is common to every run" in line and not (tmp_path / "b").exists()
    study = create(tmp_path / "s", {"ours": listen_runs["runs"]["ours"], "video": listen_runs["runs"]["video"]})
    (study / "answers.sqlite").write_bytes(b"\x00garbage" * 512)
    for cmd in (["report"], ["serve", "--port", "0"], ["invite", "--count", "1"]):
        line = _one_error_line(listen(*cmd, "--study", str(study)))
        assert str(study / "answers.sqlite") in line and "unreadable" in line
    line = _one_error_line(listen("report", "--study", str(tmp_path / "nothing")))
    assert "is not a listening study" in line
    line = _one_error_line(listen("serve", "--study", str(study), "--port", "70000"))
    assert "is not a TCP port" in line
    p = listen("create", "--study", str(tmp_path / "c"), "--run", "=x")
    assert p.returncode == 2 and "expected NAME=RUN_DIR" in p.stderr  # argparse's own usage error
