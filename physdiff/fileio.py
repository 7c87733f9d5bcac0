"""Every file physdiff publishes goes through here: a unique temporary name, then an atomic rename.

Readers (a resumed job, another rank, a user's ``cat``) never see half a file, and two writers of the
same path never share a temporary file: the temporary name carries the process id and a random token,
so a crash leaves at most a ``.<name>.<pid>-<token>.tmp`` sibling that :func:`sweep_temps` removes.

    atomic_write_text(run / "DONE.json", text)              # text, JSON, bytes
    atomic_write_json(run / "DONE.json", {"step": 10})
    with atomic_output(out / "model.safetensors") as tmp:   # a library that wants a file name
        save_file(state, str(tmp))
    publish(tmp_dir, final_dir)                             # a folder assembled elsewhere (checkpoints)

A test (``tests/test_fileio_only.py``) holds every other module to this: no ``os.replace``,
``os.rename`` or ``Path.replace/rename`` and no hand-made ``.tmp`` names outside this file.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any, Iterator

TEMP_SUFFIX = ".tmp"


def temp_path(path: str | Path, token: str | None = None) -> Path:
    """A sibling of ``path`` no other writer uses: ``.<name>.<pid>-<token>.tmp`` (same folder, so the rename is atomic).

    ``token`` lets several processes agree on one temporary folder (the ranks of a checkpoint write).
    """
    path = Path(path)
    tok = token if token is not None else f"{os.getpid()}-{secrets.token_hex(4)}"
    return path.with_name(f".{path.name}.{tok}{TEMP_SUFFIX}")


def is_temp(path: str | Path) -> bool:
    """True for a name made by :func:`temp_path` (an unfinished or abandoned write)."""
    name = Path(path).name
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the rename itself is still atomic
    finally:
        os.close(fd)


def publish(tmp: str | Path, final: str | Path, *, durable: bool = False) -> Path:
    """Rename a finished temporary file or folder onto ``final`` (replacing a file; a folder is removed first).

    ``durable=True`` also fsyncs the parent folder, so the new name survives a power cut (checkpoints).
    """
    tmp, final = Path(tmp), Path(final)
    if tmp.is_dir() and final.is_dir():  # os.replace cannot replace a non-empty folder
        shutil.rmtree(final)
    os.replace(tmp, final)
    if durable:
        _fsync_dir(final.parent)
    return final


def fsync_file(path: str | Path) -> None:
    """Flush one file's bytes to disk (before it is published as complete)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(path: str | Path, *, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write ``path`` through; published on success, removed on any error."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        yield tmp
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise
    if durable and tmp.is_file():
        fsync_file(tmp)
    publish(tmp, path, durable=durable)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (parent folders are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (parent folders are created)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any, *, indent: int | None = 2, sort_keys: bool = False) -> Path:
    """``obj`` as JSON (non-JSON values through ``str``), one trailing newline, written atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=sort_keys, default=str) + "\n")


def write_text_if_changed(path: str | Path, text: str) -> Path:
    """``atomic_write_text`` unless the file already holds exactly ``text`` (a resumed job touches nothing it need not)."""
    path = Path(path)
    if path.exists() and path.read_text() == text:
        return path
    return atomic_write_text(path, text)


def sweep_temps(folder: str | Path, recursive: bool = False) -> list[Path]:
    """Remove abandoned temporary files/folders under ``folder``; returns what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [p for p in (folder.rglob(".*" + TEMP_SUFFIX) if recursive else folder.glob(".*" + TEMP_SUFFIX))]
    for p in found:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return found
