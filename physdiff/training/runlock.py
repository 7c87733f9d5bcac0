"""One process trains a run folder at a time: an ``fcntl.flock`` on ``<run>/run.lock``.

Two launches of the same config on one data root land in the same run folder (its name is the config
hash). Without a lock both train: ``metrics.jsonl`` gets every step twice, MLflow logs every step twice,
and their checkpoints overwrite each other. The lock is an advisory ``flock`` held by the process, so the
kernel releases it when the process dies however it dies (``kill -9``, a preempted SLURM job): a crashed
run never blocks its own requeue.

Who holds it:

* the training engine, on rank 0, from before it reads the run's checkpoints until it returns (the other
  ranks learn the outcome through one broadcast, so all ranks fail together instead of hanging in the next
  collective; only rank 0 writes the run folder's shared files);
* ``physdiff launch`` while it creates the run folder and its MLflow run (and, for ``--local``, through the
  training in the same process: the lock is re-entrant within a process).

A second holder waits up to ``train.lock_timeout`` seconds (a requeued job whose predecessor is still
exiting gets the lock as soon as it is gone), then refuses with :class:`RunLocked`, naming the folder and
the holder's pid and host. On a file system without ``flock`` (some Lustre mounts) the lock is skipped
with one warning: nothing is locked there, as before.

    with RunLock(run_dir, timeout=60, what="prior"):
        ...                                          # this process alone trains run_dir
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from physdiff.errors import PhysdiffError

LOCK_FILE = "run.lock"
POLL_S = 0.2


class RunLocked(PhysdiffError):
    """Another live process holds the run folder: this one must not train it (nothing was changed)."""


_held: dict[str, tuple[int, int]] = {}  # lock path -> (fd, depth): re-entrant within this process
_mutex = threading.Lock()
_warned_unsupported = False


def _forget_in_child() -> None:
    """A forked child (DataLoader worker, process pool) drops its copies: it must not keep the lock alive."""
    global _mutex
    _mutex = threading.Lock()
    for fd, _depth in _held.values():
        try:
            os.close(fd)  # the parent's descriptor keeps the lock; only this copy goes
        except OSError:
            pass
    _held.clear()


os.register_at_fork(after_in_child=_forget_in_child)


def _holder(path: Path) -> str:
    try:
        d = json.loads(path.read_text() or "{}")
        return f"pid {d.get('pid')} on {d.get('host')} since {time.strftime('%H:%M:%S', time.localtime(d.get('since', 0)))}"
    except (OSError, ValueError):
        return "another process"


class RunLock:
    """The run folder's lock (see the module docstring); a context manager, or ``acquire()`` / ``release()``."""

    def __init__(self, run_dir: str | Path, timeout: float = 60.0, what: str = "run") -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self.timeout = float(timeout)
        self.what = what
        self._acquired = False

    def acquire(self) -> "RunLock":
        global _warned_unsupported
        key = str(self.path.resolve())  # resolves the existing part of the path: the same key before and after mkdir
        with _mutex:
            if key in _held:  # this process holds it already (the launcher, then the engine)
                fd, depth = _held[key]
                _held[key] = (fd, depth + 1)
                self._key, self._acquired = key, True
                return self
        self.run_dir.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.timeout
        waited = False
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    if not _warned_unsupported:
                        _warned_unsupported = True
                        warnings.warn(f"{self.path}: this file system does not support flock ({e.strerror}); "
                                      "two launches of one run are not prevented here", RuntimeWarning, stacklevel=2)
                    self._key, self._acquired = key, False
                    return self
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise RunLocked(
                        f"run folder {self.run_dir} is in use by {_holder(self.path)} (lock {self.path}); "
                        f"waited {self.timeout:g} s (train.lock_timeout). Wait for that {self.what} run to end, "
                        "or stop it; a crashed run releases the lock by itself") from None
                if not waited:
                    waited = True
                    print(f"[{self.what}] {self.run_dir.name} is in use by {_holder(self.path)}; waiting up to "
                          f"{self.timeout:g} s", file=sys.stderr, flush=True)
                time.sleep(POLL_S)
                continue
            # The folder may have been removed (and the lock file with it) between open and flock: a lock on
            # an unlinked file guards nothing. Retry until the locked file is the one at the path.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                self.run_dir.mkdir(parents=True, exist_ok=True)
                continue
            break
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}).encode())
        with _mutex:
            _held[key] = (fd, 1)
        self._key, self._acquired = key, True
        return self

    def release(self) -> None:
        if not self._acquired:
            return
        self._acquired = False
        with _mutex:
            fd, depth = _held.get(self._key, (-1, 0))
            if depth > 1:
                _held[self._key] = (fd, depth - 1)
                return
            _held.pop(self._key, None)
        if fd >= 0:
            os.close(fd)  # closing the last descriptor releases the flock

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def held_here(run_dir: str | Path) -> bool:
    """True when this process holds ``run_dir``'s lock."""
    p = Path(run_dir) / LOCK_FILE
    try:
        key = str(p.resolve())
    except OSError:
        return False
    with _mutex:
        return key in _held


class training_lock:  # noqa: N801  (a context manager used like a function)
    """The engine's lock: rank 0 acquires, every rank learns the outcome from one broadcast.

        with training_lock(run_dir, is_main, device, cfg.train.lock_timeout, recipe.name):
            ...
    """

    def __init__(self, run_dir: Path, is_main: bool, device: Any, timeout: float, what: str) -> None:
        self.lock = RunLock(run_dir, timeout, what) if is_main else None
        self.device, self.what, self.run_dir = device, what, run_dir

    def __enter__(self) -> "training_lock":
        from physdiff.training.distributed import broadcast_int

        err: RunLocked | None = None
        if self.lock is not None:
            try:
                self.lock.acquire()
            except RunLocked as e:
                err = e
        ok = broadcast_int(0 if err is not None else 1, self.device)
        if err is not None:
            raise err
        if not ok:
            raise RunLocked(f"run folder {self.run_dir} is in use by another {self.what} run (rank 0 could not lock it)")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.lock is not None:
            self.lock.release()
