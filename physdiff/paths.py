"""The one git-ignored data folder that holds generated worlds, shards, runs and the MLflow store."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "PHYSDIFF_DATA"


def data_root(override: str | os.PathLike[str] | None = None) -> Path:
    """``override`` if given, else ``$PHYSDIFF_DATA``, else ``./data`` (relative to the working directory)."""
    root = override or os.environ.get(ENV_VAR) or "data"
    return Path(root).expanduser().resolve()
