"""Kinds of struck objects: what a material is made into, at what size, and how it looks.

Greatest Hits is a walk through real places striking what is found there, so a material does not
come as an abstract distribution but as *things*: walls are drywall plates, floors are carpet,
railings and poles are metal bars, windows and cups are glass, mugs, dishes and tiles are ceramic,
tables, doors and boards are wood, stones are rock, books and bags are paper, couches and clothes
are cloth, bins and bottles are plastic. An :class:`ObjectKind` fixes, for one such thing:

- its material (the sound's calibrated statistics, :mod:`physdiff.world.materials`);
- its partial-ratio family (a pole is a free bar, a window pane a plate, a mug a shell);
- its physical size range in metres (inside the material's measured-calibrated range, so a wall
  rings lower than a tile of the same drywall-like board);
- how readily someone striking things picks it (``prominence``: walls, floors and tables get hit
  more often than a glass vase);
- its footprint in the picture (rectangle or ellipse, width / height ratio).

    >>> KINDS["railing"].material, KINDS["railing"].family
    ('metal', 'bar')
    >>> sorted(k.name for k in kinds_of("glass"))
    ['cup', 'mirror', 'vase', 'window']
"""

from __future__ import annotations

from dataclasses import dataclass

from physdiff.data.labels import PAPER_MATERIALS


@dataclass(frozen=True)
class ObjectKind:
    """One kind of struck thing (see the module docstring)."""

    name: str
    material: str
    family: str  # partial-ratio family, physdiff.world.materials.family_ratios
    size_m: tuple[float, float]  # log-uniform physical size (m)
    prominence: float  # relative chance of being struck when a video visits a site that has it
    shape: str  # picture footprint: "rect" or "ellipse"
    aspect: tuple[float, float]  # footprint width / height, uniform


def _k(name: str, material: str, family: str, size: tuple[float, float], prominence: float, shape: str,
       aspect: tuple[float, float]) -> ObjectKind:
    return ObjectKind(name, material, family, size, prominence, shape, aspect)


KINDS: dict[str, ObjectKind] = {
    k.name: k
    for k in (
        # glass: panes are plates, vessels are shells (the beating doublets of a struck glass)
        _k("window", "glass", "plate", (0.25, 0.4), 0.6, "rect", (0.7, 1.4)),
        _k("mirror", "glass", "plate", (0.25, 0.4), 0.5, "rect", (0.6, 0.9)),
        _k("cup", "glass", "shell", (0.06, 0.12), 0.8, "ellipse", (0.7, 0.9)),
        _k("vase", "glass", "shell", (0.12, 0.3), 0.5, "ellipse", (0.55, 0.8)),
        # wood: boards and slats are free bars, tops and doors are plates
        _k("table", "wood", "plate", (0.6, 1.5), 1.5, "rect", (1.3, 2.0)),
        _k("door", "wood", "plate", (0.8, 1.5), 1.2, "rect", (0.45, 0.7)),
        _k("cabinet", "wood", "plate", (0.35, 0.8), 0.9, "rect", (0.7, 1.1)),
        _k("board", "wood", "bar", (0.3, 1.2), 1.0, "rect", (2.5, 4.0)),
        _k("chair", "wood", "bar", (0.15, 0.45), 0.8, "rect", (0.8, 1.3)),
        _k("bench", "wood", "bar", (0.6, 1.5), 1.1, "rect", (2.5, 4.0)),
        _k("fence", "wood", "bar", (0.5, 1.5), 1.0, "rect", (2.0, 3.5)),
        # ceramic: vessels are shells, dishes and tiles plates
        _k("mug", "ceramic", "shell", (0.08, 0.13), 1.0, "ellipse", (0.8, 1.1)),
        _k("bowl", "ceramic", "shell", (0.12, 0.25), 0.8, "ellipse", (1.1, 1.5)),
        _k("sink", "ceramic", "shell", (0.35, 0.5), 0.7, "ellipse", (1.2, 1.6)),
        _k("dish", "ceramic", "plate", (0.18, 0.3), 0.8, "ellipse", (1.0, 1.2)),
        _k("tile", "ceramic", "plate", (0.1, 0.3), 1.2, "rect", (0.9, 1.2)),
        # metal: railings and poles are bars, sheets plates, vessels shells
        _k("railing", "metal", "bar", (0.6, 1.2), 1.3, "rect", (3.0, 4.5)),
        _k("pole", "metal", "bar", (0.6, 1.2), 1.2, "rect", (0.22, 0.35)),
        _k("locker", "metal", "plate", (0.5, 1.0), 0.9, "rect", (0.6, 1.0)),
        _k("sign", "metal", "plate", (0.3, 0.6), 0.7, "rect", (1.0, 1.5)),
        _k("pot", "metal", "shell", (0.15, 0.3), 0.8, "ellipse", (1.0, 1.3)),
        _k("can", "metal", "shell", (0.06, 0.15), 0.7, "ellipse", (0.6, 0.8)),
        # cloth: dense, damped, inharmonic (layered fabric over foam)
        _k("couch", "cloth", "soft", (0.9, 1.5), 1.3, "rect", (1.5, 2.2)),
        _k("cushion", "cloth", "soft", (0.3, 0.6), 1.0, "rect", (1.0, 1.3)),
        _k("clothes", "cloth", "soft", (0.3, 0.9), 1.0, "ellipse", (0.9, 1.4)),
        _k("towel", "cloth", "soft", (0.3, 0.7), 0.8, "rect", (0.6, 0.9)),
        # plastic: moulded shells and panels
        _k("bin", "plastic", "shell", (0.3, 0.6), 1.2, "rect", (0.7, 0.9)),
        _k("bottle", "plastic", "shell", (0.1, 0.3), 1.0, "rect", (0.3, 0.45)),
        _k("box", "plastic", "plate", (0.15, 0.4), 0.9, "rect", (1.1, 1.5)),
        _k("seat", "plastic", "plate", (0.35, 0.6), 0.8, "rect", (0.8, 1.1)),
        # drywall: gypsum board on studs, a large damped plate
        _k("wall", "drywall", "plate", (0.8, 2.0), 1.5, "rect", (1.2, 1.8)),
        _k("panel", "drywall", "plate", (0.4, 0.8), 0.7, "rect", (0.8, 1.2)),
        # carpet: pile over underlay, soft
        _k("floor", "carpet", "soft", (1.2, 2.5), 1.4, "rect", (1.3, 1.8)),
        _k("rug", "carpet", "soft", (0.5, 1.2), 1.0, "rect", (1.2, 1.6)),
        # paper: soft bundles, stiff cardboard plates
        _k("book", "paper", "soft", (0.15, 0.35), 1.1, "rect", (0.7, 0.85)),
        _k("bag", "paper", "soft", (0.25, 0.5), 0.9, "ellipse", (0.8, 1.1)),
        _k("carton", "paper", "plate", (0.25, 0.6), 0.9, "rect", (1.0, 1.4)),
        _k("notebook", "paper", "soft", (0.1, 0.3), 0.8, "rect", (0.75, 0.9)),
        # rock: thick solids
        _k("stone", "rock", "block", (0.1, 0.3), 1.0, "ellipse", (1.0, 1.5)),
        _k("boulder", "rock", "block", (0.4, 0.8), 0.9, "ellipse", (1.2, 1.8)),
        _k("step", "rock", "block", (0.3, 0.8), 1.0, "rect", (2.0, 3.0)),
    )
}

for _kind in KINDS.values():  # every kind is one of the paper's materials, with a known family
    if _kind.material not in PAPER_MATERIALS or _kind.family not in ("bar", "plate", "shell", "block", "soft"):
        raise RuntimeError(f"object kind {_kind.name!r}: material {_kind.material!r} / family {_kind.family!r}")
if {k.material for k in KINDS.values()} != set(PAPER_MATERIALS):
    raise RuntimeError("every paper material needs at least one object kind")


def kinds_of(material: str) -> list[ObjectKind]:
    """The kinds made of ``material``, in table order."""
    return [k for k in KINDS.values() if k.material == material]
