"""physdiff.logs: progress is a tqdm bar on a terminal and a few plain lines in a file; logging is set up once."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from pathlib import Path

from physdiff import logs
from tests.log_rules import check_progress_lines

REPO = Path(__file__).resolve().parents[1]


def _capture() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    logger = logging.getLogger("physdiff.test_logs")
    logger.handlers[:] = [logging.StreamHandler(stream)]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, stream


def test_a_file_gets_one_line_per_ten_percent() -> None:
    logger, stream = _capture()
    bar = logs.progress_bar(1000, "prior", every_s=3600, every_pct=10, logger=logger)
    for _ in range(1000):
        bar.update(1)
    bar.set_postfix(loss="0.1")
    bar.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10, lines  # 10 %, 20 %, ..., 100 %
    assert lines[0].startswith("prior: 100/1000 (10%)") and lines[-1].startswith("prior: 1000/1000 (100%)")
    assert check_progress_lines(lines) == {"prior": 10}


def test_a_slow_loop_gets_a_line_every_interval(monkeypatch) -> None:
    logger, stream = _capture()
    clock = iter(range(0, 10_000, 30))  # 30 s per step
    monkeypatch.setattr(logs.time, "monotonic", lambda: float(next(clock)))
    bar = logs.progress_bar(1000, "video", every_s=60, every_pct=10, logger=logger)
    for _ in range(5):
        bar.update(1)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2, lines  # at 60 s and 120 s; the 0.5 % steps never reach 10 %
    check_progress_lines(lines)


def test_nested_and_disabled_bars_are_silent_in_a_file() -> None:
    logger, stream = _capture()
    for bar in (logs.progress_bar(10, "ddim sampling", terminal_only=True, logger=logger),
                logs.progress_bar(10, "off", enabled=False, logger=logger)):
        for _ in range(10):
            bar.update(1)
    assert list(logs.progress(range(3), desc="x", enabled=False)) == [0, 1, 2]
    assert stream.getvalue() == ""


def test_setup_logging_is_idempotent() -> None:
    code = ("import logging, sys; from physdiff.logs import setup_logging; setup_logging(); setup_logging(); "
            "logging.getLogger('physdiff.x').info('[x] hello'); logging.getLogger('mlflow').info('hidden'); "
            "print(sum(getattr(h, '_physdiff', False) for h in logging.getLogger().handlers))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "1" and p.stderr.strip() == "[x] hello"
