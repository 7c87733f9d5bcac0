"""Resume only a sweep folder this tool wrote: a keyed digest over every file Ray Tune's restore unpickles.

``Tuner.restore`` unpickles ``tune/tuner.pkl``, expands the cloudpickle blobs inside
``tune/experiment_state-*.json`` and unpickles the searcher / callback states (``tune/*.pkl``): every
``.json`` and ``.pkl`` at the top of the experiment folder, the set Ray copies back before restoring
(``_ExperimentCheckpointManager.sync_down_experiment_state``). A crafted file there runs code. So:

* a per-user secret (32 random bytes, ``$PHYSDIFF_SECRET_DIR/secret.key``, default
  ``~/.config/physdiff/secret.key``) is created on first use with mode 0600 in a 0700 folder, and refused
  if another user owns it or others can read it;
* the sweep records HMAC-SHA256(secret, name + NUL + bytes) of each such file in ``<sweep>/sweep.digest``
  as it writes them: ``tuner.pkl`` right after the Tuner writes it; the experiment state from Ray's local
  staging copy at every controller step (:class:`StateSigner`, a Tune callback: what this driver just
  wrote, before Ray syncs it into the sweep folder; the last few versions of each file are kept, since the
  sync lags a step); everything once more after ``fit`` returns. ``sweep.json`` is signed too (resume
  trusts its settings);
* :func:`verify_sweep` runs before ``Tuner.restore`` (and before the results are read back): a file
  whose digest is not among its recorded ones, or a sweep without ``sweep.digest``, is a one-line refusal
  naming the file. Nothing from the folder is unpickled before that check.

What the digest does not cover, and why that is safe: per-trial folders (``result.json``, ``params.*``,
``error.pkl``: restore reads trials from the signed experiment state and clears the error files of the
trials it resumes) and the trial checkpoints (a JSON pointer read with ``json``, and the trainer's own
checkpoints, loaded with ``torch.load(weights_only=True)``).

    sign_sweep(sweep_dir)             # after writing sweep.json / the Tuner / fit
    verify_sweep(sweep_dir)           # before Tuner.restore: raises PhysdiffError on any mismatch
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
from pathlib import Path
from typing import Any, Iterable

from ray.tune import Callback

from physdiff.errors import PhysdiffError
from physdiff.fileio import atomic_write_json

DIGEST = "sweep.digest"  # no .json/.pkl suffix: Ray never copies or reads it
KEY_FILE = "secret.key"
KEEP = 16  # recorded versions per file (the sync into the sweep folder lags the staging copy)


class UntrustedSweep(PhysdiffError):
    """A sweep folder whose files do not carry this user's digest: never restored."""


# ----------------------------------------------------------------------------- the secret


def secret_dir() -> Path:
    return Path(os.environ.get("PHYSDIFF_SECRET_DIR") or Path.home() / ".config" / "physdiff")


def secret_key() -> bytes:
    """This user's signing key, created 0600 on first use; refused when another user owns it or others can read it."""
    folder = secret_dir()
    path = folder / KEY_FILE
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
            f.flush()
            os.fsync(f.fileno())
    st = os.stat(path, follow_symlinks=False)
    if not stat.S_ISREG(st.st_mode):
        raise PhysdiffError(f"{path} is not a regular file; remove it (a new secret is created on first use)")
    if st.st_uid != os.getuid():
        raise PhysdiffError(f"{path} belongs to uid {st.st_uid}, not to you (uid {os.getuid()}); remove it")
    if st.st_mode & 0o077:
        raise PhysdiffError(f"{path} is readable by others (mode {stat.S_IMODE(st.st_mode):o}); chmod 600 {path}")
    text = path.read_text().strip()
    if len(text) < 64:  # another process is writing it right now (O_EXCL lost the race): it is written in one go
        import time

        time.sleep(0.2)
        text = path.read_text().strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise PhysdiffError(f"{path} does not hold a hex secret; remove it (a new one is created on first use)") from None
    if len(key) < 32:
        raise PhysdiffError(f"{path} holds a secret shorter than 32 bytes; remove it (a new one is created on first use)")
    return key


def file_digest(key: bytes, name: str, data: bytes) -> str:
    """HMAC-SHA256 over the file's name in the sweep folder and its bytes (a file cannot stand in for another)."""
    return hmac.new(key, name.encode() + b"\0" + data, hashlib.sha256).hexdigest()


# ----------------------------------------------------------------------------- what is signed


def restored_files(sweep_dir: Path) -> list[Path]:
    """``sweep.json`` and every ``.json`` / ``.pkl`` at the top of ``tune/``: what a resume reads."""
    sweep_dir = Path(sweep_dir)
    out = [sweep_dir / "sweep.json"] if (sweep_dir / "sweep.json").is_file() else []
    tune_dir = sweep_dir / "tune"
    if tune_dir.is_dir():
        out += sorted(p for p in tune_dir.iterdir() if p.suffix in (".json", ".pkl") and p.is_file())
    return out


def _name(sweep_dir: Path, path: Path) -> str:
    return path.relative_to(sweep_dir).as_posix()


def _read_digest(sweep_dir: Path) -> dict[str, list[str]]:
    p = Path(sweep_dir) / DIGEST
    if not p.is_file():
        return {}
    try:
        d = json.loads(p.read_text())
        files = d["files"]
        assert isinstance(files, dict) and all(isinstance(v, list) for v in files.values())
        return {str(k): [str(x) for x in v] for k, v in files.items()}
    except (OSError, ValueError, KeyError, AssertionError):
        raise UntrustedSweep(f"{p} is unreadable; refusing to resume this sweep") from None


def record(sweep_dir: Path, entries: Iterable[tuple[str, bytes]], key: bytes | None = None) -> None:
    """Add the digests of ``(name, bytes)`` to ``sweep.digest`` (the newest ``KEEP`` versions per name)."""
    sweep_dir = Path(sweep_dir)
    key = key or secret_key()
    files = _read_digest(sweep_dir)
    changed = False
    for name, data in entries:
        dg = file_digest(key, name, data)
        have = files.setdefault(name, [])
        if have and have[-1] == dg:
            continue
        if dg in have:
            have.remove(dg)
        have.append(dg)
        del have[:-KEEP]
        changed = True
    if changed or not (sweep_dir / DIGEST).exists():
        atomic_write_json(sweep_dir / DIGEST, {"format": "physdiff-sweep-digest-1", "algorithm": "hmac-sha256",
                                               "files": files}, indent=1)


def sign_sweep(sweep_dir: Path, names: Iterable[str] | None = None) -> None:
    """Sign the restored files now in ``sweep_dir`` (all of them, or only those ``names``)."""
    sweep_dir = Path(sweep_dir)
    paths = restored_files(sweep_dir)
    if names is not None:
        wanted = set(names)
        paths = [p for p in paths if _name(sweep_dir, p) in wanted]
    record(sweep_dir, [(_name(sweep_dir, p), p.read_bytes()) for p in paths])


def verify_sweep(sweep_dir: Path) -> None:
    """Raise :class:`UntrustedSweep` unless every file a resume reads carries a digest this user recorded."""
    sweep_dir = Path(sweep_dir)
    if not (sweep_dir / DIGEST).is_file():
        raise UntrustedSweep(f"refusing to resume {sweep_dir}: no {DIGEST}, so nothing shows this tool wrote it "
                             "(Ray Tune's restore would unpickle its files)")
    files = _read_digest(sweep_dir)
    key = secret_key()
    for p in restored_files(sweep_dir):
        name = _name(sweep_dir, p)
        if file_digest(key, name, p.read_bytes()) not in files.get(name, []):
            raise UntrustedSweep(f"refusing to resume {sweep_dir}: {p} does not match the digest this tool recorded "
                                 f"in {DIGEST} (changed since, or not written by physdiff sweep for you); "
                                 "Ray Tune's restore would unpickle it")


# ----------------------------------------------------------------------------- signing while Tune runs


class StateSigner(Callback):
    """Records the digest of each experiment-state file this driver writes, from Ray's local staging copy.

    Tune writes the experiment state into a driver-local staging folder inside the controller step, then
    syncs it into ``<sweep>/tune`` in the background; ``on_step_end`` runs right after, in the same thread.
    Kept in ``tuner.pkl`` with the run config (so a restored sweep keeps signing): holds paths only, the key
    is read when needed.
    """

    def __init__(self, sweep_dir: str | Path) -> None:
        self.sweep_dir = str(sweep_dir)
        self._seen: dict[str, tuple[int, int]] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"sweep_dir": self.sweep_dir}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.sweep_dir = state["sweep_dir"]
        self._seen = {}

    def _sign_staging(self, trials: list[Any]) -> None:
        if not trials:
            return
        staging = Path(trials[0].storage.experiment_driver_staging_path)
        if not staging.is_dir():
            return
        entries = []
        for p in sorted(staging.iterdir()):
            if p.suffix not in (".json", ".pkl") or not p.is_file():
                continue
            st = p.stat()
            sig = (st.st_size, st.st_mtime_ns)
            if self._seen.get(p.name) == sig:
                continue
            self._seen[p.name] = sig
            entries.append((f"tune/{p.name}", p.read_bytes()))
        if entries:
            record(Path(self.sweep_dir), entries)

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        self._sign_staging(trials)

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        self._sign_staging(trials)
