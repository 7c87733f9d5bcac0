"""The progress-line rule of physdiff.logs, checked on a captured log (shared by the log tests)."""

from __future__ import annotations

import re

from physdiff.logs import PROGRESS_EVERY_PCT, PROGRESS_EVERY_S

# "prior: 40/400 (10%) 12.3 s elapsed, 2.9 it/s, eta 1.9 min, loss=0.41"
LINE = re.compile(r"^(?P<desc>[\w\[\] -]+): (?P<n>\d+)/(?P<total>\d+) \((?P<pct>\d+)%\) (?P<s>[\d.]+) s elapsed")


def check_progress_lines(lines: list[str], slack_s: float = 2.0) -> dict[str, int]:
    """Assert that consecutive lines of one bar are >= 10 % or >= 60 s apart (or the bar's last line).

    A bar starts again when its count or its clock goes back (the next diffusion variant, a resumed run).
    Returns the number of progress lines per bar name.
    """
    last: dict[str, tuple[int, int, float]] = {}
    counts: dict[str, int] = {}
    for line in lines:
        m = LINE.match(line)
        if not m:
            continue
        desc, n, total, s = m["desc"], int(m["n"]), int(m["total"]), float(m["s"])
        counts[desc] = counts.get(desc, 0) + 1
        prev = last.get(desc)
        last[desc] = (n, total, s)
        if prev is None or n <= prev[0] or s < prev[2] or total != prev[1]:
            continue  # a new bar
        gap_pct = 100.0 * (n - prev[0]) / total
        gap_s = s - prev[2]
        assert n == total or gap_pct >= PROGRESS_EVERY_PCT - 1e-9 or gap_s >= PROGRESS_EVERY_S - slack_s, (
            f"progress lines too close ({gap_pct:.1f} %, {gap_s:.1f} s): {line}")
    return counts
