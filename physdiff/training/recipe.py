"""What a training stage is: a recipe (model, data, loss, evaluation, export) the engine runs.

Recipes are single-device code. The engine (:mod:`physdiff.training.trainer`) owns distribution,
mixed precision, accumulation, clipping, EMA, checkpoints, signals, tracking and the export of the
trained weights, so a new stage (video, diffusion, ...) only subclasses :class:`Recipe` and registers
itself in the stage registry (:mod:`physdiff.stages`); the engine never imports the recipes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn


@dataclass
class EvalContext:
    """Where an evaluation may write media (figures, WAVs) that the tracker then logs."""

    run_dir: Path
    epoch: int
    step: int
    media_dir: Path
    num_examples: int = 2
    extra: dict[str, Any] = field(default_factory=dict)


class Recipe:
    """Base class of a training stage. Subclasses override the methods marked 'required'."""

    name: str = ""
    # Config keys (top-level fields or sections) that define this stage's result, i.e. its run hash.
    # None: the stage's row of the identity table (physdiff.identity.SECTIONS[name]).
    sections: tuple[str, ...] | None = None

    def _stage_or_train(self, cfg: Any, key: str) -> Any:
        """``<stage section>.<key>`` when set (> 0), else ``train.<key>``."""
        own = getattr(getattr(cfg, self.name, None), key, 0) or 0
        return own if own > 0 else getattr(cfg.train, key)

    def num_epochs(self, cfg: Any) -> int:
        """Epochs of this stage: ``<stage section>.epochs`` when set (> 0), else ``train.epochs``.

        Stages differ in cost by orders of magnitude (the prior converges in a few epochs, the
        diffusion model needs many), so one pipeline config can size each; the stage section is
        part of the stage's run hash, so changing one stage's epochs reruns only that stage.
        """
        return int(self._stage_or_train(cfg, "epochs"))

    def learning_rate(self, cfg: Any) -> float:
        """Peak learning rate: ``<stage section>.lr`` when set (> 0), else ``train.lr`` (sized per stage, like epochs)."""
        return float(self._stage_or_train(cfg, "lr"))

    def weight_decay(self, cfg: Any) -> float:
        """AdamW weight decay: ``<stage section>.weight_decay`` when set (> 0), else ``train.weight_decay``."""
        return float(self._stage_or_train(cfg, "weight_decay"))

    def grad_clip(self, cfg: Any) -> float:
        """Clip the global gradient norm at this value (0 = no clipping): ``train.grad_clip`` by default."""
        return float(cfg.train.grad_clip)

    def build_scheduler(self, optimizer: torch.optim.Optimizer, cfg: Any, batches_per_epoch: int) -> tuple[Any, str]:
        """The lr schedule and when it steps ("epoch" or "step"): lr x ``train.lr_decay`` per epoch by default."""
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=cfg.train.lr_decay), "epoch"

    def selection(self, cfg: Any) -> tuple[str, str] | None:
        """The validation metric that picks the exported weights, and its direction: e.g. ("val/acc", "max").

        None (the default): the last epoch's weights are exported. With a metric, the engine keeps the best
        evaluation's weights (physdiff.training.best) and stops after ``train.patience`` evaluations without
        improvement.
        """
        return None

    def eval_every(self, cfg: Any) -> int:
        """Evaluate every N epochs: ``<stage section>.eval_every`` when set (> 0), else ``train.eval_every``.

        Per stage: the diffusion stage's evaluation samples spectrograms and renders audio, which
        costs as much as several of its short CPU epochs.
        """
        return int(self._stage_or_train(cfg, "eval_every"))

    def setup(self, cfg: Any, rank: int, world_size: int) -> None:
        """Called once per process before anything else (find data, count batches)."""

    def build_model(self, cfg: Any) -> nn.Module:  # required
        raise NotImplementedError

    def num_train_batches(self, cfg: Any, world_size: int) -> int:  # required
        """Micro-batches each rank sees per epoch (identical on every rank)."""
        raise NotImplementedError

    def train_batches(self, cfg: Any, epoch: int, rank: int, world_size: int) -> Iterator[dict[str, Any]]:  # required
        """This rank's micro-batches of ``epoch``, in a deterministic order given (seed, epoch, rank)."""
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: dict[str, Any], cfg: Any) -> tuple[torch.Tensor, dict[str, float]]:  # required
        """Scalar training loss of one micro-batch, and extra scalars to log."""
        raise NotImplementedError

    def evaluate(self, model: nn.Module, cfg: Any, ctx: EvalContext) -> dict[str, float]:
        """Rank 0 only: validation metrics (prefixed ``val/``); may write media into ``ctx.media_dir``."""
        return {}

    def export(self, model: nn.Module, cfg: Any, out: Any) -> None:
        """Rank 0 only, after training: add the stage's products to ``out`` (a :class:`physdiff.artifacts.ExportWriter`).

        The engine has already written the trained weights (``export/model.safetensors``, EMA weights when
        kept) and writes the manifest after this returns; per-clip arrays go in with ``out.table(...)``.
        """
