"""User-facing errors: one actionable line that names the file or key at fault.

Entry points wrap their ``main`` in :func:`run_cli`, so a ``PhysdiffError`` (or a ``ConfigError``)
prints ``error: <message>`` and exits non-zero instead of a traceback. Set ``PHYSDIFF_DEBUG=1`` to
see the traceback as well.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Callable


class PhysdiffError(RuntimeError):
    """An expected failure caused by input or environment; the message says what and where."""


class DataError(PhysdiffError):
    """Bad or missing input data (media, annotations, shards); the message names the file."""


def run_cli(main: Callable[[], int | None]) -> None:
    """Run an entry point's ``main``; turn expected errors into one line on stderr and exit code 2."""
    from physdiff.config import ConfigError
    from physdiff.logs import setup_logging

    setup_logging()  # the one place entry points configure logging: plain lines on stderr
    try:
        rc = main()
    except (PhysdiffError, ConfigError, FileNotFoundError, NotADirectoryError, FileExistsError, IsADirectoryError,
            PermissionError) as e:
        if os.environ.get("PHYSDIFF_DEBUG"):
            traceback.print_exc()
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    raise SystemExit(rc or 0)
