"""Config sections ``video`` (the visual encoder) and ``diffusion`` (the physics-driven denoiser)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass
class VideoConfig:
    backbone: str = "resnet50"
    frame_size: int = 224
    tsm_fold_div: int = 8  # shift 1/8 of channels forward, 1/8 backward

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"backbone": "resnet18", "frame_size": 64},
        "debug": {"frame_size": 32},
    }


@dataclass
class DiffusionConfig:
    timesteps: int = 1000
    schedule: str = "cosine"
    width: int = 64
    channel_mults: tuple[int, ...] = (1, 2, 4, 8)
    latent_dim: int = 256  # physics latent mu
    cond_dropout: float = 0.1

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"width": 16, "channel_mults": (1, 2, 4)},
        "debug": {"width": 8, "channel_mults": (1, 2)},
    }
