"""The synthetic physics world: impact videos and sounds in the Greatest Hits layout, with ground truth.

``generate_world(out_dir, world)`` writes it; see docs/synthetic_world.md for the physics. The heavy
parts (rendering, PyAV) load on first use, so reading the ``world`` config section stays cheap.
"""

from typing import Any

from physdiff.world.config import WorldConfig

__all__ = ["WorldConfig", "generate_world", "ensure_world"]


def __getattr__(name: str) -> Any:
    if name in ("generate_world", "ensure_world"):
        from physdiff.world import generate

        return getattr(generate, name)
    raise AttributeError(f"module 'physdiff.world' has no attribute {name!r}")
