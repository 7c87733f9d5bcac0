"""Stop requests from signals: the handler only records the signal; the trainer acts at a step boundary.

Why: a signal interrupts whatever the main thread is doing (a collective, a half-written file), so
the handler must not save or exit. The trainer polls :meth:`StopFlag.code` at each optimiser-step
boundary and the ranks agree on the maximum (``all_reduce``), so every rank saves the same step.

Codes: 0 none, 1 stop (SIGTERM/SIGINT/SIGUSR1: save and exit), 2 requeue (SIGUSR2, submitit's
preemption / time-limit signal: save, then hand over to submitit to requeue the job).
"""

from __future__ import annotations

import signal
import threading
from typing import Any, Callable

NONE, STOP, REQUEUE = 0, 1, 2

_CODES = {signal.SIGTERM: STOP, signal.SIGINT: STOP, signal.SIGUSR1: STOP, signal.SIGUSR2: REQUEUE}


class StopFlag:
    """Records stop signals; installs itself only from the main thread (signal module rule)."""

    def __init__(self) -> None:
        self._code = NONE
        self.signals: list[str] = []
        self._previous: dict[int, Any] = {}
        self._sigint_count = 0

    def _handler(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGINT:
            self._sigint_count += 1
            if self._sigint_count > 1:  # a second Ctrl-C means "now"
                raise KeyboardInterrupt
        self._code = max(self._code, _CODES.get(signum, STOP))
        self.signals.append(signal.Signals(signum).name)

    def install(self, signums: tuple[int, ...] = tuple(_CODES)) -> "StopFlag":
        if threading.current_thread() is not threading.main_thread():
            return self  # e.g. inside a Ray actor thread: the caller's stop_fn is the stop channel
        for s in signums:
            self._previous[s] = signal.getsignal(s)
            signal.signal(s, self._handler)
        return self

    def previous(self, signum: int) -> Callable[..., Any] | None:
        """The handler that was installed before ours (e.g. submitit's requeue handler)."""
        h = self._previous.get(signum)
        return h if callable(h) else None

    def uninstall(self) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        self._previous.clear()

    def request(self, code: int = STOP) -> None:
        """Programmatic stop (tests, ``stop_fn``)."""
        self._code = max(self._code, code)

    @property
    def code(self) -> int:
        return self._code
