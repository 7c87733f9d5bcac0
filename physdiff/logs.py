"""Logs a SLURM job file can hold: library code logs through :mod:`logging`; progress draws only on a terminal.

Library modules take a logger (``log = logging.getLogger(__name__)``) and never configure logging; the
entry points (the ``physdiff`` command, the torchrun worker, submitit jobs) call :func:`setup_logging` once.

Progress: :func:`progress` wraps an iterable. On a terminal it is a tqdm bar; anywhere else (a SLURM log, a
pipe, CI) it writes one plain line every ``every_pct`` percent or ``every_s`` seconds, whichever comes first,
so a log file holds short lines and no cursor escapes::

    for batch in progress(loader, total=n, desc="prior", every_s=60):
        ...
    # in a file: "prior: 40/400 (10%) 12.3 s elapsed, 2.9 it/s, eta 1.9 min"
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any, Iterable, Iterator, TextIO

LOG_FORMAT = "%(asctime)s %(levelname).1s %(name)s: %(message)s"
PROGRESS_EVERY_S = float(os.environ.get("PHYSDIFF_PROGRESS_EVERY_S", "60"))
PROGRESS_EVERY_PCT = float(os.environ.get("PHYSDIFF_PROGRESS_EVERY_PCT", "10"))


def setup_logging(level: int | str | None = None, stream: TextIO | None = None) -> None:
    """Configure the root logger once for an entry point (``PHYSDIFF_LOG_LEVEL`` or INFO; stderr).

    Messages are plain ``[stage] ...`` lines (the logger name is the module); idempotent.
    """
    level = level or os.environ.get("PHYSDIFF_LOG_LEVEL", "INFO")
    root = logging.getLogger()
    if any(getattr(h, "_physdiff", False) for h in root.handlers):
        root.setLevel(level)
        return
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler._physdiff = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("mlflow", "alembic", "urllib3", "filelock", "numba", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def is_terminal(stream: TextIO | None = None) -> bool:
    s = stream or sys.stderr
    return bool(getattr(s, "isatty", lambda: False)())


class _LineProgress:
    """The file-friendly progress: one line every ``every_pct`` % or ``every_s`` seconds."""

    def __init__(self, total: int | None, desc: str, every_s: float, every_pct: float, initial: int,
                 logger: logging.Logger) -> None:
        self.total, self.desc, self.every_s, self.every_pct = total, desc, every_s, every_pct
        self.n, self.log = initial, logger
        self.t0 = self.t_last = time.monotonic()
        self.pct_last = self._pct()
        self.postfix = ""

    def _pct(self) -> float:
        return 100.0 * self.n / self.total if self.total else 0.0

    def _line(self, now: float) -> str:
        dt = max(now - self.t0, 1e-9)
        rate = self.n / dt
        head = f"{self.desc}: {self.n}/{self.total} ({self._pct():.0f}%)" if self.total else f"{self.desc}: {self.n}"
        eta = ""
        if self.total and rate > 0 and self.n < self.total:
            eta = f", eta {(self.total - self.n) / rate / 60:.1f} min"
        return f"{head} {dt:.1f} s elapsed, {rate:.3g} it/s{eta}" + (f", {self.postfix}" if self.postfix else "")

    def update(self, k: int = 1) -> None:
        self.n += k
        now = time.monotonic()
        if (now - self.t_last >= self.every_s or self._pct() - self.pct_last >= self.every_pct
                or (self.total and self.n == self.total)):
            self.log.info(self._line(now))
            self.t_last, self.pct_last = now, self._pct()

    def set_postfix(self, **kw: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in kw.items())

    def close(self) -> None:
        pass


def progress_bar(total: int | None = None, desc: str = "", *, initial: int = 0, enabled: bool = True,
                 terminal_only: bool = False, leave: bool = True, every_s: float | None = None,
                 every_pct: float | None = None, logger: logging.Logger | None = None) -> Any:
    """An object with ``update(k)``, ``set_postfix(**kw)`` and ``close()``: tqdm on a terminal, log lines elsewhere,
    nothing when ``enabled`` is False.

    ``terminal_only``: a nested bar (the sampler's steps inside a generation loop) draws on a terminal and is
    silent in a file, where the outer loop's lines already say how far it got.
    """
    if not enabled:
        return _Null()
    if is_terminal():
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True, file=sys.stderr, mininterval=1.0,
                    leave=leave)
    if terminal_only:
        return _Null()
    return _LineProgress(total, desc, PROGRESS_EVERY_S if every_s is None else every_s,
                         PROGRESS_EVERY_PCT if every_pct is None else every_pct, initial,
                         logger or logging.getLogger("physdiff.progress"))


def progress(iterable: Iterable[Any], total: int | None = None, desc: str = "", *, enabled: bool = True,
             **kw: Any) -> Iterator[Any]:
    """Iterate ``iterable`` with :func:`progress_bar` (``total`` from ``len()`` when it has one)."""
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    bar = progress_bar(total, desc, enabled=enabled, **kw)
    try:
        for x in iterable:
            yield x
            bar.update(1)
    finally:
        bar.close()


class _Null:
    def update(self, k: int = 1) -> None:
        pass

    def set_postfix(self, **kw: Any) -> None:
        pass

    def close(self) -> None:
        pass
