"""A tiny in-memory recipe for engine tests: noisy linear regression with dropout (exercises RNG state)."""

from __future__ import annotations

from typing import Any, Iterator

import torch
from torch import nn

from physdiff.training.recipe import EvalContext, Recipe


class ToyRecipe(Recipe):
    name = "toy"
    sections = ("seed", "train")

    def __init__(self, batches: int = 6, batch_size: int = 4, nan_at_step: int | None = None) -> None:
        self.batches, self.batch_size, self.nan_at_step = batches, batch_size, nan_at_step
        self.calls = 0
        g = torch.Generator().manual_seed(123)
        self.true_w = torch.randn(8, 1, generator=g)  # (8, 1)

    def build_model(self, cfg: Any) -> nn.Module:
        return nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.2), nn.Linear(16, 1))

    def num_train_batches(self, cfg: Any, world_size: int) -> int:
        return self.batches

    def train_batches(self, cfg: Any, epoch: int, rank: int, world_size: int) -> Iterator[dict[str, Any]]:
        g = torch.Generator().manual_seed(cfg.seed * 7919 + epoch * 101 + rank)
        for _ in range(self.batches):
            x = torch.randn(self.batch_size, 8, generator=g)  # (B, 8)
            yield {"x": x, "y": x @ self.true_w + 0.01 * torch.randn(self.batch_size, 1, generator=g)}

    def loss(self, model: nn.Module, batch: dict[str, Any], cfg: Any) -> tuple[torch.Tensor, dict[str, float]]:
        self.calls += 1
        loss = ((model(batch["x"]) - batch["y"]) ** 2).mean()
        if self.nan_at_step is not None and self.calls >= self.nan_at_step:
            loss = loss * float("nan")
        return loss, {}

    def evaluate(self, model: nn.Module, cfg: Any, ctx: EvalContext) -> dict[str, float]:
        g = torch.Generator().manual_seed(999)
        x = torch.randn(64, 8, generator=g)
        return {"val/mse": float(((model(x) - x @ self.true_w) ** 2).mean())}
