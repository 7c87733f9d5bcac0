"""Config sections ``train`` (the engine), ``tracking`` (MLflow) and ``prior`` (the residual-parameter stage)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from physdiff.configlib import nonsemantic


@dataclass
class TrainConfig:
    epochs: int = 200
    lr: float = 5e-4
    weight_decay: float = 1e-4
    lr_decay: float = 0.95  # lr x 0.95 per epoch
    grad_clip: float = 1.0
    grad_accum: int = 1
    mixed_precision: str = "no"  # "no" | "bf16" | "fp16"
    ema_decay: float = 0.0  # 0 disables EMA weights
    checkpoint_every: int = nonsemantic(500)
    keep_checkpoints: int = nonsemantic(3)
    log_every: int = nonsemantic(10)

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"epochs": 10},
        "debug": {"epochs": 2},
    }


@dataclass
class TrackingConfig:
    tracking_uri: str = nonsemantic("")  # "" -> $MLFLOW_TRACKING_URI or sqlite in the data folder
    experiment: str = nonsemantic("physdiff")

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}


@dataclass
class PriorConfig:
    residual_dims: int = 100
    d_model: int = 256
    layers: int = 4
    heads: int = 4
    dropout: float = 0.1

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"d_model": 64, "layers": 2},
        "debug": {"d_model": 32, "layers": 1},
    }
