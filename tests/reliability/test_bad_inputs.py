"""Bad inputs to every command: one actionable ``error: ...`` line on stderr, non-zero exit, no traceback.

The cases (and the folders they read) are in ``tests/reliability/badinput.py``; their results also make the
table in ``docs/reliability.md``, which a test here keeps current (``PHYSDIFF_WRITE_DOCS=1`` rewrites it).

Every case runs the real entry point as a subprocess (all cases of the module start together, so the
suite pays for the Python + torch start-up about once per core). The data cases use a real Greatest
Hits layout folder written with PyAV + soundfile: an empty (0-byte) video, a wav holding NaN, a video
without its wav, and for the default (non-strict) build a stereo 48 kHz wav (accepted: mixed to mono
and resampled, documented in physdiff/data/media.py) next to those three, which are skipped with their
reasons and counted (written + skipped = annotated).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reliability.badinput import (CASE_NAMES, Case, _video, _wav, busy_port, cases, docs_table_section,  # noqa: F401
                                        environment, make_layout, render_table, run_cases, with_table)
from tests.reliability.conftest import REPO

pytestmark = pytest.mark.timeout(600)
DOC = REPO / "docs" / "reliability.md"


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_layout(tmp_path_factory.mktemp("bad-inputs"))


@pytest.fixture(scope="module")
def results(layout: dict[str, Path]) -> dict:
    """Run every case (3 at a time) and keep (case, completed process); plus the busy port used."""
    sock, port = busy_port()
    try:
        out = run_cases(cases(layout, port), environment(layout["base"] / "empty-data"))
    finally:
        sock.close()
    out["_port"] = port  # type: ignore[assignment]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", CASE_NAMES)
def test_one_line_error_and_nonzero_exit(results: dict, name: str) -> None:
    case, p = results[name]
    err = p.stderr.strip()
    lines = [l for l in err.splitlines() if l.strip()]
    shown = f"$ {' '.join(case.cmd)}\nexit {p.returncode}\n--- stderr ---\n{err[-3000:]}\n--- stdout ---\n{p.stdout[-1500:]}"
    assert p.returncode != 0, shown
    assert "Traceback (most recent call last)" not in p.stderr, shown
    assert lines and lines[-1].startswith("error: "), shown
    assert sum(l.startswith("error: ") for l in lines) == 1, shown  # one error line, said once
    assert case.expect in lines[-1], f"the error line should name {case.expect!r}\n{shown}"


@pytest.mark.slow
def test_default_build_counts_bad_media_as_skips(layout: dict[str, Path], tmp_path: Path) -> None:
    """Without --strict, bad media are skipped with the file and reason, and counts reconcile."""
    out = tmp_path / "shards"
    # shards.val_fraction=0: every training video stays in train, so the counts below are the whole training side
    p = subprocess.run([sys.executable, "shards/build.py", "--source", str(layout["mixed"]), "--out", str(out),
                        "--preset", "debug", "shards.val_fraction=0"], cwd=REPO, capture_output=True, text=True, timeout=300,
                       env=dict(__import__("os").environ, OMP_NUM_THREADS="1"))
    assert p.returncode == 0, p.stderr[-3000:]
    man = json.loads((out / "train" / "manifest.json").read_text())
    assert man["written"] == 2  # the stereo 48 kHz video: mixed to mono, resampled, both hits kept
    assert man["written"] + len(man["skipped"]) == man["annotated"] == 8
    files = {Path(s["file"]).name for s in man["skipped"]}
    assert files == {"2015-01-01-00-00-02_denoised.mp4", "2015-01-01-00-00-03_denoised.wav",
                     "2015-01-01-00-00-04_denoised.wav"}, man["skipped"]
    assert all(s["reason"] for s in man["skipped"])


@pytest.mark.slow
def test_docs_reliability_table_is_the_one_these_cases_give(results: dict, layout: dict[str, Path]) -> None:
    """docs/reliability.md shows, per command, each bad input and the line it gives: generated from the runs above."""
    table = render_table(results, layout["base"], results["_port"])
    doc = DOC.read_text()
    if os.environ.get("PHYSDIFF_WRITE_DOCS"):
        DOC.write_text(with_table(doc, table))
        doc = DOC.read_text()
    assert docs_table_section(doc) == table, (
        "docs/reliability.md's bad-input table is out of date; regenerate it with\n"
        "  PHYSDIFF_WRITE_DOCS=1 python -m pytest tests/reliability/test_bad_inputs.py -k docs")


def test_unanticipated_errors_are_one_line_too_and_traceback_shows_the_trace(tmp_path: Path) -> None:
    """A ZeroDivisionError, a TypeError, a dependency's own error: one line with its type and where; exit 2."""
    snippet = ("import sys; from pathlib import Path; from physdiff.errors import run_cli\n"
               "def main():\n    f = Path(sys.argv[1]); f.write_bytes(b'\\xff')\n"
               "    return {'zero': lambda: 1 / 0, 'type': lambda: len(3), 'utf8': lambda: f.read_text(encoding='utf-8')}[sys.argv[2]]()\n"
               "run_cli(main)\n")
    env = environment(tmp_path)
    for kind, needle in (("zero", "ZeroDivisionError: division by zero"), ("type", "TypeError:"),
                         ("utf8", "UnicodeDecodeError:")):
        p = subprocess.run([sys.executable, "-c", snippet, str(tmp_path / "x.txt"), kind], cwd=REPO, env=env,
                           capture_output=True, text=True, timeout=60)
        lines = p.stderr.strip().splitlines()
        assert p.returncode == 2 and len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
        assert lines[0].startswith("error: " + needle) and "physdiff --traceback" in lines[0], lines[0]
        p = subprocess.run([sys.executable, "-c", snippet, str(tmp_path / "x.txt"), kind], cwd=REPO,
                           env=dict(env, PHYSDIFF_DEBUG="1"), capture_output=True, text=True, timeout=60)
        assert p.returncode == 2 and "Traceback (most recent call last)" in p.stderr, p.stderr
        assert p.stderr.strip().splitlines()[-1].startswith("error: " + needle)
    # --traceback, first or right after the command, is the same switch on the real command line
    for argv in (["--traceback", "launch"], ["launch", "--traceback"]):
        p = subprocess.run([sys.executable, "-m", "physdiff", *argv, "--stage", "prior", "--dry-run", "--preset", "debug",
                            "train.log_every=0"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert p.returncode == 2 and "Traceback (most recent call last)" in p.stderr, p.stderr[-2000:]
        assert p.stderr.strip().splitlines()[-1] == "error: train.log_every must be >= 1, got 0"
