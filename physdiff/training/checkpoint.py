"""Atomic, pickle-free training checkpoints: one directory per checkpoint, renamed into place.

Layout of ``<run>/checkpoints/``::

    step_00000120/            # a complete checkpoint (only complete ones ever carry this name)
        state.pt              # model, optimizer, scheduler, EMA, scaler state dicts (tensors + numbers)
        rng_rank0.pt ...      # each rank's RNG states (python, numpy, torch, cuda) as tensors
        meta.json             # the sidecar: resolved config, step, epoch, data cursor, metrics
        COMPLETE              # written last, before the rename
    .step_00000130.<id>.tmp/  # a write in progress (or one killed mid-write): never loaded, swept later

Every rank writes its RNG file into the temporary folder, then rank 0 writes ``state.pt``,
``meta.json`` and ``COMPLETE`` and renames the folder: a rename is atomic on POSIX, so a process
killed at any point leaves either the previous checkpoint or the new complete one. Everything is
loaded with ``torch.load(weights_only=True)``: RNG states are stored as tensors, never pickled.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from physdiff.errors import PhysdiffError
from physdiff.fileio import fsync_file, is_temp, publish, temp_path

_STEP_RE = re.compile(r"^step_(\d{8})$")
COMPLETE = "COMPLETE"


class CheckpointError(PhysdiffError):
    """A checkpoint that cannot be read; the message names it."""


class UnsafeCheckpoint(CheckpointError):
    """A checkpoint file holding pickled objects (refused by ``weights_only``): tampering, never skipped silently."""


# ----------------------------------------------------------------------------- RNG states as tensors


def rng_state() -> dict[str, torch.Tensor]:
    """Every RNG this process uses, as tensors (so ``weights_only=True`` can load it)."""
    version, mt, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    assert np_name == "MT19937"
    state = {
        "python_version": torch.tensor(version, dtype=torch.int64),
        "python_mt": torch.tensor(mt, dtype=torch.int64),  # (625,)
        "python_gauss": torch.tensor([float("nan") if gauss is None else gauss], dtype=torch.float64),
        "numpy_keys": torch.from_numpy(np_keys.astype(np.int64)),  # (624,)
        "numpy_misc": torch.tensor([np_pos, np_has_gauss], dtype=torch.int64),
        "numpy_gauss": torch.tensor([np_gauss], dtype=torch.float64),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            state[f"cuda_{i}"] = s
    return state


def set_rng_state(state: dict[str, torch.Tensor]) -> None:
    """Inverse of :func:`rng_state`."""
    gauss = float(state["python_gauss"][0])
    random.setstate(
        (int(state["python_version"]), tuple(int(x) for x in state["python_mt"].tolist()), None if np.isnan(gauss) else gauss)
    )
    pos, has_gauss = (int(x) for x in state["numpy_misc"].tolist())
    np.random.set_state(
        ("MT19937", state["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss, float(state["numpy_gauss"][0]))
    )
    torch.set_rng_state(state["torch"])
    cuda = sorted(k for k in state if k.startswith("cuda_"))
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([state[k] for k in cuda])


# ----------------------------------------------------------------------------- listing


@dataclass
class CheckpointInfo:
    path: Path
    step: int


def list_checkpoints(ckpt_dir: str | Path) -> list[CheckpointInfo]:
    """Complete checkpoints, oldest first. Folders without COMPLETE (or temporary ones) are ignored."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    out = []
    for p in ckpt_dir.iterdir():
        m = _STEP_RE.match(p.name)
        if m and p.is_dir() and (p / COMPLETE).is_file():
            out.append(CheckpointInfo(p, int(m.group(1))))
    return sorted(out, key=lambda c: c.step)


def latest_checkpoint(ckpt_dir: str | Path) -> CheckpointInfo | None:
    ckpts = list_checkpoints(ckpt_dir)
    return ckpts[-1] if ckpts else None


def sweep_incomplete(ckpt_dir: str | Path) -> list[Path]:
    """Remove leftovers of interrupted writes (rank 0, before training starts). Returns what was removed."""
    ckpt_dir = Path(ckpt_dir)
    removed = []
    if ckpt_dir.is_dir():
        for p in ckpt_dir.iterdir():
            if is_temp(p) or (_STEP_RE.match(p.name) and not (p / COMPLETE).exists()):
                shutil.rmtree(p, ignore_errors=True)
                removed.append(p)
    return removed


# ----------------------------------------------------------------------------- writing


def tmp_dir_for(ckpt_dir: str | Path, step: int, token: str) -> Path:
    """The temporary folder all ranks write step ``step`` into; ``token`` is agreed by all ranks."""
    return temp_path(Path(ckpt_dir) / f"step_{step:08d}", token)


def write_rank_rng(tmp: Path, rank: int) -> None:
    """Each rank: store its RNG states in the temporary folder."""
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / f"rng_rank{rank}.pt"
    torch.save(rng_state(), path)
    fsync_file(path)


def finalize(tmp: Path, ckpt_dir: str | Path, step: int, state: dict[str, Any], meta: dict[str, Any], keep: int) -> Path:
    """Rank 0, after every rank wrote its RNG file: write the state and sidecar, mark complete, rename, prune."""
    ckpt_dir = Path(ckpt_dir)
    torch.save(state, tmp / "state.pt")
    fsync_file(tmp / "state.pt")
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")
    (tmp / COMPLETE).write_text(f"{step}\n")
    fsync_file(tmp / COMPLETE)
    final = ckpt_dir / f"step_{step:08d}"
    # the same step saved twice (e.g. stop signal right at an epoch end) replaces the folder
    publish(tmp, final, durable=True)
    for old in list_checkpoints(ckpt_dir)[:-keep]:
        shutil.rmtree(old.path, ignore_errors=True)
    return final


# ----------------------------------------------------------------------------- reading


def _load_tensors(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a complete checkpoint that does not load is a real error: name it
        text = str(e).lower()
        # weights_only refuses a file that names a Python global (a pickled callable): not damage, tampering.
        # torch 2.11 says "Trying to load unsupported GLOBAL posix.system ..."; older ones "Unsupported global: ...".
        unsafe = "unsupported global" in text or "not an allowed global" in text
        raise (UnsafeCheckpoint if unsafe else CheckpointError)(f"cannot load checkpoint {path}: {e}") from e


def load_state(ckpt: Path) -> dict[str, Any]:
    return _load_tensors(Path(ckpt) / "state.pt")


def load_meta(ckpt: Path) -> dict[str, Any]:
    path = Path(ckpt) / "meta.json"
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"cannot load checkpoint {path}: {e}") from e


def load_rank_rng(ckpt: Path, rank: int) -> dict[str, torch.Tensor] | None:
    """This rank's RNG states, or None when the checkpoint was written by fewer ranks."""
    path = Path(ckpt) / f"rng_rank{rank}.pt"
    if not path.exists():
        return None
    return _load_tensors(path)


# ----------------------------------------------------------------------------- resuming


@dataclass
class ResumePoint:
    """The newest checkpoint that loads completely, with its state already read (rank 0)."""

    path: Path
    step: int
    state: dict[str, Any]
    meta: dict[str, Any]
    skipped: list[tuple[Path, str]]  # newer checkpoints that did not load, (moved-aside folder, reason)


def resume_point(ckpt_dir: str | Path, log: Any = None) -> ResumePoint | None:
    """The newest complete checkpoint whose files all load, falling back past damaged newer ones (rank 0).

    A checkpoint marked COMPLETE can still be damaged afterwards (a truncated ``state.pt`` after a disk
    filled up or a partial copy): each candidate's ``state.pt``, ``meta.json`` and every ``rng_rank*.pt``
    are loaded; a damaged one is moved aside as ``step_<n>.corrupt-<time>`` (kept for inspection, never
    loaded or pruned), ``log`` is told, and the next older one is tried. A file holding a pickled object
    (:class:`UnsafeCheckpoint`) is not damage but tampering: it is raised, never skipped.
    """
    import time

    from physdiff.fileio import publish

    skipped: list[tuple[Path, str]] = []
    for info in reversed(list_checkpoints(ckpt_dir)):
        try:
            state = load_state(info.path)
            meta = load_meta(info.path)
            for rng in sorted(info.path.glob("rng_rank*.pt")):
                _load_tensors(rng)
        except UnsafeCheckpoint:
            raise
        except CheckpointError as e:
            aside = info.path.with_name(f"{info.path.name}.corrupt-{int(time.time())}")
            publish(info.path, aside)
            skipped.append((aside, str(e)))
            if log is not None:
                log(f"checkpoint {info.path.name} is damaged ({e}); moved it aside to {aside.name} and fell back "
                    "to the previous complete checkpoint")
            continue
        return ResumePoint(info.path, info.step, state, meta, skipped)
    if skipped and log is not None:
        log("no complete checkpoint loads: training starts from the beginning")
    return None
