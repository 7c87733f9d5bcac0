"""Greatest Hits label sets (Owens et al., 2016) and the paper's subset (Su et al., 2023, Sec. 4)."""

from __future__ import annotations

# The 17 materials of the dataset (plus "None" for unannotated), in a fixed order: class ids index it.
GREATEST_HITS_MATERIALS: tuple[str, ...] = (
    "wood", "metal", "dirt", "rock", "leaf", "plastic", "cloth", "paper", "grass",
    "water", "drywall", "gravel", "plastic-bag", "ceramic", "tile", "carpet", "glass",
)  # fmt: skip

# The paper's 10 materials (hit + static subset).
PAPER_MATERIALS: tuple[str, ...] = (
    "glass", "wood", "ceramic", "metal", "cloth", "plastic", "drywall", "carpet", "paper", "rock",
)  # fmt: skip

ACTIONS: tuple[str, ...] = ("hit", "scratch", "None")
UNKNOWN = "None"


def material_index(material: str) -> int:
    """Class id of a material in GREATEST_HITS_MATERIALS (the classifier's full label set)."""
    return GREATEST_HITS_MATERIALS.index(material)


def is_known_material(material: str) -> bool:
    return material in GREATEST_HITS_MATERIALS
