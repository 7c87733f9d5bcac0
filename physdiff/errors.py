"""User-facing errors: one actionable line that names the file or key at fault.

Entry points wrap their ``main`` in :func:`run_cli`. Whatever goes wrong, the user gets one line on
stderr and exit code 2, never a traceback:

- a ``PhysdiffError`` / ``DataError`` / ``ConfigError`` (raised on purpose, the message names the file or
  the setting) prints ``error: <message>``;
- an ``OSError`` (a missing file, a folder where a file should be, a full disk) prints its message, which
  names the path;
- anything else (``ValueError``, ``TypeError``, ``ZeroDivisionError``, a dependency's own error such as
  safetensors' ``SafetensorError`` or a ``UnicodeDecodeError``) is a failure nobody anticipated: it still
  prints one line, with the exception type, the file it was reading when that can be told (a ``Path``
  held by the innermost frames of physdiff), and where in physdiff it happened, so it can be reported.
  Programming errors are not silenced: the exit code is non-zero and the trace is one flag away.

``physdiff --traceback <command> ...`` (or ``PHYSDIFF_DEBUG=1``) prints the full traceback as well::

    run_cli(lambda: main(sys.argv[1:]))
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from types import TracebackType
from typing import Callable

EXIT_ERROR = 2
MAX_LINE = 800  # characters of a message kept on the one line


class PhysdiffError(RuntimeError):
    """An expected failure caused by input or environment; the message says what and where."""


class DataError(PhysdiffError):
    """Bad or missing input data (media, annotations, shards); the message names the file."""


def one_line(text: str, limit: int = MAX_LINE) -> str:
    """``text`` with every run of whitespace (newlines included) collapsed to one space, cut at ``limit``."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _frames(tb: TracebackType | None) -> list:
    out = []
    while tb is not None:
        out.append(tb.tb_frame)
        tb = tb.tb_next
    return out


def _is_physdiff(filename: str) -> bool:
    here = Path(__file__).resolve().parent
    try:
        return Path(filename).resolve().is_relative_to(here)
    except (OSError, ValueError):
        return False


def _file_in_hand(exc: BaseException) -> Path | None:
    """The file an unexpected error was most likely reading: a ``Path`` local of the innermost physdiff frames.

    Looks at the three innermost physdiff frames, innermost first, for a local holding a ``pathlib.Path``
    to an existing file (e.g. ``f`` = ``<source>/train.txt`` in the function that decodes it). A heuristic
    for errors nobody anticipated; anticipated ones name their file themselves.
    """
    frames = [f for f in _frames(exc.__traceback__) if _is_physdiff(f.f_code.co_filename)]
    for frame in reversed(frames[-3:]):
        for value in frame.f_locals.values():
            if isinstance(value, Path):
                try:
                    if value.is_file():
                        return value
                except OSError:
                    continue
    return None


def _where(exc: BaseException) -> str:
    """``physdiff/data/layout.py:151 in read_split_files``: the innermost physdiff frame."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _is_physdiff(f.filename)]
    if not frames:
        return ""
    f = frames[-1]
    root = Path(__file__).resolve().parent.parent
    try:
        name = str(Path(f.filename).resolve().relative_to(root))
    except ValueError:
        name = f.filename
    return f"{name}:{f.lineno} in {f.name}"


def error_line(exc: BaseException) -> str:
    """The one line :func:`run_cli` prints for ``exc`` (without the ``error: `` prefix)."""
    from physdiff.configlib import ConfigError

    if isinstance(exc, (PhysdiffError, ConfigError)):
        return one_line(str(exc))
    if isinstance(exc, OSError):
        # FileNotFoundError & co. carry the path; a bare OSError from a library may not
        msg = str(exc) or type(exc).__name__
        return one_line(msg if exc.filename is not None or exc.strerror is None else f"{type(exc).__name__}: {msg}")
    parts = [f"{type(exc).__name__}: {str(exc) or '(no message)'}"]
    path = _file_in_hand(exc)
    if path is not None:
        parts.append(f"while reading {path}")
    where = _where(exc)
    tail = f"unexpected failure at {where}" if where else "unexpected failure"
    return one_line(f"{' '.join(parts)} ({tail}; rerun as `physdiff --traceback ...` for the full trace)")


def debug_enabled() -> bool:
    return os.environ.get("PHYSDIFF_DEBUG", "") not in ("", "0")


def run_cli(main: Callable[[], int | None]) -> None:
    """Run an entry point's ``main``; any failure becomes one line on stderr and exit code 2 (see the module doc)."""
    from physdiff.logs import setup_logging

    setup_logging()  # the one place entry points configure logging: plain lines on stderr
    try:
        rc = main()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except SystemExit:
        raise
    except Exception as e:  # noqa: BLE001  (the entry point: one line for everything, the trace on request)
        if debug_enabled():
            traceback.print_exc()
        print(f"error: {error_line(e)}", file=sys.stderr)
        raise SystemExit(EXIT_ERROR) from None
    raise SystemExit(rc or 0)
