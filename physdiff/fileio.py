"""Small text-file writes shared by run folders, manifests and reports."""

from __future__ import annotations

import os
from pathlib import Path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary name and a rename, so readers never see half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def write_text_if_changed(path: str | Path, text: str) -> Path:
    """``atomic_write_text`` unless the file already holds exactly ``text`` (a resumed job touches nothing it need not)."""
    path = Path(path)
    if path.exists() and path.read_text() == text:
        return path
    return atomic_write_text(path, text)
