"""Config section ``world``: the synthetic physics world (see docs/synthetic_world.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from physdiff.configlib import nonsemantic


@dataclass
class WorldConfig:
    videos: int = 20
    hits_per_video: int = 16
    size: int = 224  # square frame size in pixels
    test_fraction: float = 0.2
    workers: int = nonsemantic(1)

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"videos": 12, "hits_per_video": 10, "size": 64},
        "debug": {"videos": 4, "hits_per_video": 4, "size": 32},
    }
