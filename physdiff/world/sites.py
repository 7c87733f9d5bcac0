"""The site catalogue: places (indoor and outdoor scenes) and the fixed objects found at each.

Greatest Hits videos are walks through real places, striking what is there; places filmed more than
once share their objects across videos. The world models that with a catalogue of **sites**:

- a site is one place of a **scene** type (kitchen, office, street, ...); the scene gives its room
  acoustics (reverberation, background noise, hum: :mod:`physdiff.world.environment`), the colours of
  its picture background, the kinds of object it must hold (``anchors``: a kitchen has a mug, a cup
  and a table) and the kinds it may hold (``extras``, weighted);
- a site holds ``world.objects_per_site`` fixed objects; each object has an id (``s03-o2``), a kind
  (:mod:`physdiff.world.objects`), its sound (material, family, size, modes, damping: one
  :class:`physdiff.world.sound.WorldObject` drawn once), how readily it is struck, and its
  appearance (footprint, texture seed): the same object looks and sounds the same in every video;
- ``world.unseen_sites`` (a fraction) of the sites are **held out**: videos recorded there go to the
  test split only, so the evaluation can measure generalisation to objects no training video struck.

Seeding: the catalogue depends only on ``world.catalogue_seed``, ``world.sites``,
``world.objects_per_site`` and ``world.unseen_sites``, never on ``world.seed``: worlds with different
seeds but the same catalogue settings film the same places (like several Greatest Hits videos of one
room), which is how the evaluation's classifier world shares sites with the evaluated world. Site i
is drawn from its own generator ``(catalogue_seed, i)``, so a catalogue of more sites extends a
smaller one (the first sites are identical); its scene is ``SCENE_CYCLE[i % 10]``, ordered so that the first 8
sites already hold every material among their anchors at least twice (with ``objects_per_site`` >= 3).

    >>> from physdiff.world.config import WorldConfig
    >>> cat = catalogue(WorldConfig(sites=4, objects_per_site=6))
    >>> [s.scene.name for s in cat.sites]
    ['kitchen', 'office', 'street', 'living-room']
    >>> cat.sites[0].objects[0].id, cat.sites[0].objects[0].kind.name
    ('s00-o0', 'mug')
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from physdiff.world.config import WorldConfig
from physdiff.world.environment import ROOMS, Recording, Room, site_acoustics
from physdiff.world.objects import KINDS, ObjectKind
from physdiff.world.sound import WorldObject, sample_object


@dataclass(frozen=True)
class Scene:
    """A type of place: its room acoustics and the kinds of object found there."""

    name: str
    room: Room
    outdoor: bool
    anchors: tuple[str, ...]  # kinds every site of this scene holds (in this order, as far as objects_per_site allows)
    extras: dict[str, float]  # further kinds, drawn with these weights


def _scene(name: str, outdoor: bool, anchors: tuple[str, ...], extras: dict[str, float]) -> Scene:
    for k in anchors + tuple(extras):
        if k not in KINDS:
            raise RuntimeError(f"scene {name!r}: unknown object kind {k!r}")
    return Scene(name, ROOMS[name], outdoor, anchors, extras)


SCENES: dict[str, Scene] = {
    s.name: s
    for s in (
        _scene("kitchen", False, ("mug", "cup", "table"),
               {"dish": 1.0, "bowl": 1.0, "tile": 1.0, "pot": 1.0, "can": 0.6, "bottle": 0.8, "box": 0.6,
                "bag": 0.6, "window": 0.5, "cabinet": 1.0, "board": 0.6, "bin": 0.5}),
        _scene("office", False, ("wall", "floor", "book", "bin"),
               {"table": 1.0, "door": 0.8, "locker": 0.8, "window": 0.5, "carton": 0.8, "notebook": 0.8,
                "seat": 0.8, "panel": 0.6, "cup": 0.3, "mug": 0.5}),
        _scene("street", True, ("pole", "stone", "window"),
               {"railing": 1.0, "sign": 1.0, "bin": 0.8, "bottle": 0.5, "bag": 0.5, "bench": 0.6, "fence": 0.5,
                "step": 0.8, "boulder": 0.3, "door": 0.4}),
        _scene("living-room", False, ("couch", "table", "rug"),
               {"cushion": 1.0, "vase": 0.6, "window": 0.6, "book": 0.8, "mug": 0.6, "wall": 0.8, "clothes": 0.5,
                "box": 0.4, "cabinet": 0.6, "chair": 0.6}),
        _scene("garage", False, ("locker", "board", "bin"),
               {"can": 0.8, "pole": 0.6, "sign": 0.5, "box": 0.8, "carton": 0.8, "stone": 0.5, "clothes": 0.6,
                "bottle": 0.5, "door": 0.5, "bench": 0.4}),
        _scene("bathroom", False, ("tile", "mirror", "bottle"),
               {"sink": 1.0, "towel": 1.0, "railing": 0.6, "wall": 0.6, "bin": 0.6, "cup": 0.4, "box": 0.4,
                "door": 0.5}),
        _scene("park", True, ("stone", "bench", "railing"),
               {"boulder": 1.0, "fence": 1.0, "pole": 0.8, "bin": 0.8, "bottle": 0.6, "bag": 0.6, "step": 0.6,
                "sign": 0.4, "can": 0.4}),
        _scene("bedroom", False, ("clothes", "wall", "book"),
               {"floor": 0.8, "rug": 0.6, "cushion": 0.8, "door": 0.8, "chair": 0.6, "bin": 0.5, "window": 0.4,
                "notebook": 0.6, "cabinet": 0.6, "box": 0.4}),
        _scene("hallway", False, ("wall", "door", "floor"),
               {"railing": 0.6, "window": 0.5, "carton": 0.6, "panel": 0.8, "rug": 0.6, "locker": 0.4,
                "bin": 0.4}),
        _scene("stairwell", False, ("railing", "wall", "step"),
               {"door": 0.8, "floor": 0.5, "window": 0.5, "panel": 0.6, "pole": 0.4, "sign": 0.4, "bin": 0.4}),
    )
}  # fmt: skip
SCENE_CYCLE: tuple[str, ...] = tuple(SCENES)  # site i is a SCENE_CYCLE[i % len] place


@dataclass(frozen=True)
class CatalogueObject:
    """One fixed object of a site: identity, sound and appearance (identical in every video)."""

    id: str  # "s03-o2": site s03, its object 2
    site: str
    kind: ObjectKind
    sound: WorldObject
    prominence: float  # relative chance of being struck when a video visits the site
    frac: float  # visual extent (fraction of the frame) at the usual camera distance
    aspect: float
    shape: str
    texture_seed: int

    @property
    def material(self) -> str:
        return self.sound.material

    def summary(self) -> dict[str, Any]:
        d = {"id": self.id, "site": self.site, "kind": self.kind.name, **self.sound.summary()}
        d.update({"prominence": round(self.prominence, 4), "picture": {"extent": round(self.frac, 4),
                  "aspect": round(self.aspect, 3), "shape": self.shape}})
        return d


@dataclass(frozen=True)
class Site:
    """One place: its scene, acoustics, picture background and fixed objects."""

    id: str  # "s03"
    index: int
    scene: Scene
    acoustics: Recording  # the site's own room acoustics; each recording perturbs it (recording_at)
    background_seed: int
    objects: tuple[CatalogueObject, ...]
    held_out: bool  # world.unseen_sites: its videos are test-only

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "scene": self.scene.name, "outdoor": self.scene.outdoor, "held_out": self.held_out,
                "acoustics": self.acoustics.summary(), "objects": [o.summary() for o in self.objects]}


@dataclass(frozen=True)
class Catalogue:
    seed: int
    sites: tuple[Site, ...]

    @property
    def held_out(self) -> frozenset[str]:
        return frozenset(s.id for s in self.sites if s.held_out)

    def object(self, object_id: str) -> CatalogueObject:
        site = self.sites[int(object_id[1:object_id.index("-")])]
        return site.objects[int(object_id.rsplit("-o", 1)[1])]

    def summary(self) -> dict[str, Any]:
        return {"catalogue_seed": self.seed, "sites": [s.summary() for s in self.sites],
                "held_out": sorted(self.held_out)}


def object_frac(size_m: float) -> float:
    """Visual extent of an object (fraction of the frame) from its physical size: log-linear."""
    return float(np.clip(0.35 + 0.12 * np.log2(size_m / 0.1), 0.3, 0.96))


def _object(site_id: str, j: int, kind: ObjectKind, rng: np.random.Generator) -> CatalogueObject:
    sound = sample_object(kind, rng)
    prominence = kind.prominence * float(np.exp(rng.normal(0.0, 0.3)))
    frac = min(object_frac(sound.size_m) * float(np.exp(rng.normal(0.0, 0.06))), 0.98)
    aspect = float(rng.uniform(*kind.aspect))
    return CatalogueObject(f"{site_id}-o{j}", site_id, kind, sound, prominence, frac, aspect, kind.shape,
                           int(rng.integers(2**31)))


def make_site(catalogue_seed: int, index: int, objects_per_site: int, held_out: bool = False) -> Site:
    """Site ``index`` of a catalogue: scene SCENE_CYCLE[index % 10], drawn from its own generator."""
    rng = np.random.default_rng([catalogue_seed, 4241, index])
    scene = SCENES[SCENE_CYCLE[index % len(SCENE_CYCLE)]]
    site_id = f"s{index:02d}"
    acoustics = site_acoustics(scene.room, rng)
    background_seed = int(rng.integers(2**31))
    kinds = list(scene.anchors[:objects_per_site])
    names = list(scene.extras)
    weights = np.array([scene.extras[k] for k in names])
    while len(kinds) < objects_per_site:
        kinds.append(names[int(rng.choice(len(names), p=weights / weights.sum()))])
    objects = tuple(_object(site_id, j, KINDS[k], rng) for j, k in enumerate(kinds))
    return Site(site_id, index, scene, acoustics, background_seed, objects, held_out)


def held_out_indices(catalogue_seed: int, sites: int, unseen_sites: float) -> list[int]:
    """The held-out sites' indices: round(unseen_sites x sites) of them (at least one when > 0), by the catalogue seed."""
    if unseen_sites <= 0:
        return []
    n = max(1, int(round(unseen_sites * sites)))
    order = np.random.default_rng([catalogue_seed, 99991]).permutation(sites)
    return sorted(int(i) for i in order[:n])


@functools.lru_cache(maxsize=16)
def _catalogue(catalogue_seed: int, sites: int, objects_per_site: int, unseen_sites: float) -> Catalogue:
    held = set(held_out_indices(catalogue_seed, sites, unseen_sites))
    return Catalogue(catalogue_seed, tuple(make_site(catalogue_seed, i, objects_per_site, i in held)
                                           for i in range(sites)))


def catalogue(world: WorldConfig) -> Catalogue:
    """The site catalogue of a world config (cached: every video of a world shares one; treat it as read-only)."""
    return _catalogue(world.catalogue_seed, world.sites, world.objects_per_site, float(world.unseen_sites))


def site_of_video(seed: int, index: int, sites: int) -> int:
    """Where video ``index`` of a world with ``seed`` was recorded: a shuffled deck of all sites per round of
    ``sites`` videos, so every site is filmed (nearly) equally often and a longer world extends a shorter one."""
    deck = np.random.default_rng([seed, 31337, index // sites]).permutation(sites)
    return int(deck[index % sites])


def kind_shares(material: str, objects_per_site: int = 6) -> dict[str, float]:
    """Expected share of a material's strikes that fall on each of its kinds, over the scene cycle.

    An object's expected count per site (anchors 1, extras by weight) times its prominence; used by
    :mod:`physdiff.world.stats` to compute the calibration table over the objects the world really strikes.
    """
    share: dict[str, float] = {}
    for scene in SCENES.values():
        anchors = scene.anchors[:objects_per_site]
        counts = {k: 1.0 for k in anchors}
        free = max(0, objects_per_site - len(anchors))
        total = sum(scene.extras.values())
        for k, w in scene.extras.items():
            counts[k] = counts.get(k, 0.0) + free * w / total
        for k, c in counts.items():
            if KINDS[k].material == material:
                share[k] = share.get(k, 0.0) + c * KINDS[k].prominence
    z = sum(share.values())
    return {k: v / z for k, v in sorted(share.items())}
