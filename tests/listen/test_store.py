"""The answers database: plans recorded at joining, the first answer final (also under racing threads),
and damaged or foreign databases refused with one line naming the file."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from physdiff.errors import DataError
from physdiff.listen.store import AnswerConflict, AnswerStore, BadAnswer
from physdiff.listen.study import create_study, participant_plan


@pytest.fixture()
def study(listen_runs: dict, tmp_path: Path):
    runs = [(n, listen_runs["runs"][n]) for n in ("ours", "video", "video_label")]
    return create_study(tmp_path / "s", runs, log=lambda m: None)


def test_plan_and_answers_round_trip(study) -> None:
    store = AnswerStore.open(study.answers_path, study.study_id)
    plan = participant_plan(study, 11)
    p = store.add_participant(plan, seed=11, source="start", user_agent="test")
    assert store.participant(p.token) == p and store.screens(p.id) == plan
    assert store.participant("nobody-has-this-token") is None
    s = plan[0]
    assert store.submit(p.id, s.position, {"matching": "C", "quality": "A"}, questions=("matching", "quality"),
                        elapsed_ms=1234, played=["A", "B", "C", "Z"]) == "recorded"
    (a, b) = store.answers()
    assert (a.question, a.choice_letter, a.choice_method, a.shown_order) == ("matching", "C", s.order[2], s.order)
    assert (b.question, b.choice_method, b.played, b.elapsed_ms) == ("quality", s.order[0], ("A", "B", "C"), 1234)
    assert store.answered_positions(p.id) == {s.position}
    with pytest.raises(BadAnswer, match="missing quality"):
        store.submit(p.id, plan[1].position, {"matching": "A"}, questions=("matching", "quality"))
    with pytest.raises(AnswerConflict):
        store.submit(p.id, s.position, {"matching": "A", "quality": "A"}, questions=("matching", "quality"))
    assert len(store.answers()) == 2


def test_racing_submissions_record_one(study) -> None:
    store = AnswerStore.open(study.answers_path, study.study_id)
    plan = participant_plan(study, 3)
    p = store.add_participant(plan, seed=3, source="start")
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def go(letter: str) -> None:
        barrier.wait()
        try:
            outcomes.append(store.submit(p.id, 0, {"matching": letter, "quality": letter},
                                         questions=("matching", "quality")))
        except AnswerConflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=go, args=(L,)) for L in "ABCABC"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = store.answers()
    assert len(rows) == 2 and rows[0].choice_letter == rows[1].choice_letter
    winner = rows[0].choice_letter
    # One "recorded"; the other thread with the same letter sees "unchanged"; the 4 others are refused.
    assert sorted(outcomes) == sorted(["recorded", "unchanged"] + ["conflict"] * 4), (winner, outcomes)


def test_damaged_and_foreign_databases_are_refused(study, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="belongs to study"):
        AnswerStore.open(study.answers_path, "another-study")
    with pytest.raises(DataError, match="not found"):
        AnswerStore.open(tmp_path / "none.sqlite", study.study_id)
    bad = tmp_path / "garbage.sqlite"
    bad.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(DataError) as e:
        AnswerStore.open(bad, study.study_id)
    assert str(bad) in str(e.value) and "unreadable" in str(e.value)
    # A real SQLite file whose pages were overwritten in the middle.
    data = bytearray(study.answers_path.read_bytes())
    assert data[:16] == b"SQLite format 3\x00" and len(data) >= 4096 * 3
    data[4096:4096 * 3] = b"\xff" * (4096 * 2)
    broken = tmp_path / "broken.sqlite"
    broken.write_bytes(bytes(data))
    with pytest.raises(DataError) as e:
        AnswerStore.open(broken, study.study_id)
    assert str(broken) in str(e.value)
    other = tmp_path / "other.sqlite"
    import sqlite3

    sqlite3.connect(other).executescript("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
    with pytest.raises(DataError, match="is not a listening-study answers database"):
        AnswerStore.open(other, study.study_id)
