"""The one artifact contract between stages: what a run folder holds, how it is written and how it is read.

A finished run folder (DAC-style ``save_to_folder`` / ``load_from_folder``)::

    <run>/config.json              the resolved config (physdiff.config.Config.write_json)
    <run>/DONE.json                the completion marker: written last, through physdiff.fileio
    <run>/export/manifest.json     what the run exports for the stages after it (below)
    <run>/export/model.safetensors the trained weights (every training stage; EMA weights when kept)
    <run>/export/<stage>-<split>.safetensors   per-clip arrays of a split (side tables, joined by key)

Writers use :class:`ExportWriter`; readers use :func:`read_export` (an :class:`Export`) and
:func:`finished`. A missing or unreadable artifact is a :class:`physdiff.errors.DataError` that names
the folder and the command that makes it, never a KeyError deep inside a stage::

    w = ExportWriter(run_dir, "video", feature_dim=128)
    w.weights(model.state_dict())
    w.table("train", keys, {"nu": nu, "logits": logits})
    w.finish()
    ex = read_export(run_dir, "video")       # later, in another process
    ex.table("train"), ex.file("model"), ex.manifest["feature_dim"]
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from physdiff.errors import DataError
from physdiff.fileio import atomic_output, atomic_write_json

EXPORT_FORMAT = "physdiff-export/2"
EXPORT_DIR = "export"
MANIFEST = "manifest.json"
DONE = "DONE.json"
WEIGHTS = "model.safetensors"


def _how_to_make(stage: str) -> str:
    return f"run it first (physdiff launch --stage {stage} ..., or --stage all)"


# ----------------------------------------------------------------------------- completion markers


def write_done(run_dir: str | Path, summary: Mapping[str, Any]) -> Path:
    """Mark a run folder complete: ``DONE.json`` holds the stage's summary (written atomically, last)."""
    return atomic_write_json(Path(run_dir) / DONE, dict(summary), sort_keys=True)


def is_finished(run_dir: str | Path) -> bool:
    return (Path(run_dir) / DONE).is_file()


def finished(run_dir: str | Path, stage: str) -> dict[str, Any]:
    """``DONE.json`` of a finished ``stage`` run; a DataError naming the folder when it is not finished."""
    path = Path(run_dir) / DONE
    if not path.is_file():
        raise DataError(f"the {stage} run {Path(run_dir)} is not finished (no {DONE}): {_how_to_make(stage)}")
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"unreadable completion marker {path}: {e}") from None


# ----------------------------------------------------------------------------- writing an export


class ExportWriter:
    """Collects one stage run's exports (weights, per-split side tables, files) and writes the manifest once."""

    def __init__(self, run_dir: str | Path, stage: str, **fields: Any) -> None:
        self.run_dir = Path(run_dir)
        self.stage = stage
        self.dir = self.run_dir / EXPORT_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        self.manifest: dict[str, Any] = {"format": EXPORT_FORMAT, "stage": stage, "run": self.run_dir.name,
                                         "files": {}, "splits": {}, **fields}

    def weights(self, state: Mapping[str, Any], **metadata: str) -> Path:
        """``export/model.safetensors`` from a state dict (tensors moved to the CPU, made contiguous)."""
        from safetensors.torch import save_file

        tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
        path = self.dir / WEIGHTS
        with atomic_output(path) as tmp:
            save_file(tensors, str(tmp), metadata={"stage": self.stage, **{k: str(v) for k, v in metadata.items()}})
        self.manifest["files"]["model"] = WEIGHTS
        return path

    def table(self, split: str, keys: list[str], arrays: Mapping[str, Any], meta: Mapping[str, Any] | None = None,
              **entry: Any) -> Path:
        """Per-clip arrays of ``split`` as the side table ``export/<stage>-<split>.safetensors``."""
        from physdiff.data.sidetable import write_side_table

        path = write_side_table(self.dir / f"{self.stage}-{split}.safetensors", keys, arrays,
                                {"producer": self.stage, "run": self.run_dir.name, "split": split, **(meta or {})})
        self.manifest["splits"][split] = {"path": path.name, "count": len(keys), **entry}
        return path

    def file(self, name: str, filename: str) -> None:
        """Record another file of ``export/`` (written by the stage) under ``name``."""
        if not (self.dir / filename).is_file():
            raise DataError(f"{self.stage} export: {self.dir / filename} was not written")
        self.manifest["files"][name] = filename

    def finish(self) -> dict[str, Any]:
        """Write ``export/manifest.json``; returns {name: path} of everything exported (for DONE.json)."""
        atomic_write_json(self.dir / MANIFEST, self.manifest)
        out = {name: str(self.dir / f) for name, f in self.manifest["files"].items()}
        out.update({split: str(self.dir / v["path"]) for split, v in self.manifest["splits"].items()})
        return out


# ----------------------------------------------------------------------------- reading an export


@dataclass
class Export:
    """A finished run's export: its manifest and the paths it names."""

    run_dir: Path
    stage: str
    manifest: dict[str, Any]

    @property
    def dir(self) -> Path:
        return self.run_dir / EXPORT_DIR

    @property
    def splits(self) -> dict[str, Path]:
        """{split: side table path}."""
        return {s: self.dir / v["path"] for s, v in self.manifest.get("splits", {}).items()}

    def table(self, split: str) -> Path:
        """The side table of ``split``; DataError when the run exported none for it."""
        paths = self.splits
        if split not in paths:
            raise DataError(f"the {self.stage} export of {self.run_dir} has no '{split}' split "
                            f"(has {', '.join(paths) or 'none'}): it was made from other shards")
        return paths[split]

    def file(self, name: str) -> Path:
        """An exported file by name (``"model"``: the weights)."""
        files = self.manifest.get("files", {})
        if name not in files or not (self.dir / files[name]).is_file():
            raise DataError(f"the {self.stage} export of {self.run_dir} holds no {name!r} file: {_how_to_make(self.stage)}")
        return self.dir / files[name]

    def weights(self) -> dict[str, Any]:
        """The exported state dict; a truncated or foreign file is a DataError naming it."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = self.file("model")
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise DataError(f"unreadable weights {path}: {e}") from None


def read_export(run_dir: str | Path, stage: str) -> Export:
    """The export of a finished ``stage`` run; a DataError naming the folder when missing or not that stage's."""
    run_dir = Path(run_dir)
    path = run_dir / EXPORT_DIR / MANIFEST
    if not path.is_file():
        raise DataError(f"no {stage} export in {run_dir} (no {EXPORT_DIR}/{MANIFEST}): {_how_to_make(stage)}")
    try:
        man = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"unreadable export manifest {path}: {e}") from None
    if not isinstance(man, dict) or man.get("format") != EXPORT_FORMAT:
        fmt = man.get("format") if isinstance(man, dict) else None
        raise DataError(f"{path}: format {fmt!r} is not {EXPORT_FORMAT!r} (made by another physdiff version; rerun the stage)")
    if man.get("stage") != stage:
        raise DataError(f"{path} is the export of a {man.get('stage')!r} run, not of a {stage!r} run")
    return Export(run_dir, stage, man)
