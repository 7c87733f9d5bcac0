"""Model selection on the validation split: the best evaluation's weights, and early stopping.

A recipe that names a selection metric (``Recipe.selection(cfg) -> ("val/balanced_acc", "max")``) has its
best evaluation's weights kept beside the checkpoints, in ``<run>/best/`` (``model.safetensors`` +
``best.json``, both through :mod:`physdiff.fileio`). The run exports those weights, not the last epoch's,
and stops early after ``train.patience`` evaluations without improvement (0 = never). The record survives
a resume: a requeued run compares against the best it had before.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from physdiff.fileio import atomic_output, atomic_write_json

BEST_DIR = "best"


class BestKeeper:
    """Rank 0's record of the best evaluation so far (``key`` improved in direction ``mode``)."""

    def __init__(self, run_dir: Path, key: str, mode: str) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"selection mode must be 'min' or 'max', got {mode!r}")
        self.dir = Path(run_dir) / BEST_DIR
        self.key, self.mode = key, mode
        self.record: dict[str, Any] = {"key": key, "mode": mode, "value": None, "epoch": None, "step": None,
                                       "evals_since_best": 0}
        path = self.dir / "best.json"
        if path.is_file():
            try:
                old = json.loads(path.read_text())
                if old.get("key") == key and old.get("mode") == mode:
                    self.record.update(old)
            except (OSError, ValueError):
                pass  # unreadable: start the record again (the next evaluation rewrites it)

    @property
    def has_best(self) -> bool:
        return self.record["value"] is not None and (self.dir / "model.safetensors").is_file()

    def _better(self, value: float) -> bool:
        best = self.record["value"]
        if not math.isfinite(value):
            return False
        return best is None or (value < best if self.mode == "min" else value > best)

    def update(self, metrics: dict[str, float], model: Any, epoch: int, step: int) -> bool:
        """After an evaluation: keep the weights if ``key`` improved; returns whether it did."""
        if self.key not in metrics:
            return False
        value = float(metrics[self.key])
        improved = self._better(value)
        if improved:
            from safetensors.torch import save_file

            self.dir.mkdir(parents=True, exist_ok=True)
            state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
            with atomic_output(self.dir / "model.safetensors") as tmp:
                save_file(state, str(tmp))
            self.record.update(value=value, epoch=epoch, step=step, evals_since_best=0)
        else:
            self.record["evals_since_best"] = int(self.record["evals_since_best"]) + 1
        atomic_write_json(self.dir / "best.json", self.record)
        return improved

    def should_stop(self, patience: int) -> bool:
        return patience > 0 and int(self.record["evals_since_best"]) >= patience

    def load_into(self, model: Any) -> None:
        """Put the best weights into ``model`` (the export then describes the selected epoch)."""
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(self.dir / "model.safetensors")))
