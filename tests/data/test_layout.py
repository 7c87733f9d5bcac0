"""Parsing the Greatest Hits layout: times lines (good and bad), split files, subset rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from physdiff.data import layout
from physdiff.errors import DataError


def test_parse_times_keeps_line_numbers_and_bad_lines(tmp_path: Path) -> None:
    p = tmp_path / "2015-02-16-16-49-06_times.txt"
    p.write_text("2.677438 ceramic hit static\n\nabc wood hit static\n1.0 wood hit\n3.5 plastic-bag scratch rigid-motion\n-1 wood hit static\n")
    events, bad = layout.parse_times(p)
    assert [(e.line, e.time, e.material, e.action, e.reaction) for e in events] == [
        (1, 2.677438, "ceramic", "hit", "static"), (5, 3.5, "plastic-bag", "scratch", "rigid-motion")]
    assert all(e.video_id == "2015-02-16-16-49-06" for e in events)
    assert [b.line for b in bad] == [3, 4, 6]  # the blank line 2 is not an event
    assert "not a number" in bad[0].reason and "4 fields" in bad[1].reason and "non-negative" in bad[2].reason


def test_split_files_and_hash_split(tmp_path: Path) -> None:
    assert layout.read_split_files(tmp_path) is None
    (tmp_path / "train.txt").write_text("a-1\nb-2\n")
    (tmp_path / "test.txt").write_text("c-3\n")
    assert layout.read_split_files(tmp_path) == {"a-1": "train", "b-2": "train", "c-3": "test"}
    (tmp_path / "test.txt").write_text("c-3\na-1\n")
    with pytest.raises(DataError, match="both train.txt and test.txt"):
        layout.read_split_files(tmp_path)
    ids = [f"2015-01-01-00-00-{i:02d}" for i in range(200)]
    splits = [layout.hash_split(i, 0.2) for i in ids]
    assert splits == [layout.hash_split(i, 0.2) for i in ids]  # deterministic
    assert 20 <= splits.count("test") <= 60  # roughly the fraction


def test_subset_rules() -> None:
    ev = lambda m, a="hit", r="static": layout.Event("v", 1, 0.5, m, a, r)  # noqa: E731
    assert layout.subset_reason(ev("wood"), "paper") is None
    assert "action" in layout.subset_reason(ev("wood", "scratch"), "paper")
    assert "reaction" in layout.subset_reason(ev("wood", r="rigid-motion"), "paper")
    assert "material" in layout.subset_reason(ev("leaf"), "paper")
    assert layout.subset_reason(ev("leaf", "scratch", "splash"), "all") is None
    assert "unknown material" in layout.subset_reason(ev("None"), "all")
