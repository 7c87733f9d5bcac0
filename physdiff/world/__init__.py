"""The synthetic physics world: impact videos and sounds in the Greatest Hits layout, with ground truth.

``generate_world(out_dir, world, seed)`` writes it; see docs/synthetic_world.md for the physics.
"""

from physdiff.world.config import WorldConfig
from physdiff.world.generate import default_world_dir, ensure_world, generate_world

__all__ = ["WorldConfig", "generate_world", "ensure_world", "default_world_dir"]
