"""World v2: a catalogue of sites with fixed objects, videos recorded at sites, held-out sites, per-clip truth."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from physdiff.configlib import ConfigError
from physdiff.data.labels import PAPER_MATERIALS
from physdiff.world import WorldConfig, generate_world
from physdiff.world.objects import KINDS, kinds_of
from physdiff.world.sites import SCENE_CYCLE, SCENES, catalogue, held_out_indices, make_site, site_of_video

from .conftest import SITES


def _truths(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(out.glob("*_physics.json"))]


def _split(out: Path) -> dict[str, str]:
    return {v: s for s in ("train", "test") for v in (out / f"{s}.txt").read_text().split()}


# The list of what things are made of, and the family their physics must have.
EXPECTED = {
    "wall": ("drywall", "plate"), "floor": ("carpet", "soft"), "railing": ("metal", "bar"), "pole": ("metal", "bar"),
    "window": ("glass", "plate"), "cup": ("glass", "shell"), "mug": ("ceramic", "shell"), "dish": ("ceramic", "plate"),
    "tile": ("ceramic", "plate"), "table": ("wood", "plate"), "door": ("wood", "plate"), "board": ("wood", "bar"),
    "stone": ("rock", "block"), "book": ("paper", "soft"), "bag": ("paper", "soft"), "couch": ("cloth", "soft"),
    "clothes": ("cloth", "soft"), "bin": ("plastic", "shell"), "bottle": ("plastic", "shell"),
}  # fmt: skip


def test_object_kinds_are_made_of_the_right_material():
    for name, (material, family) in EXPECTED.items():
        assert (KINDS[name].material, KINDS[name].family) == (material, family), name
    for m in PAPER_MATERIALS:
        assert len(kinds_of(m)) >= 2, m  # every material comes as at least two kinds of thing
    # sizes: a wall is larger than any cup, a floor than any mug; every range is ordered and physical
    assert KINDS["wall"].size_m[0] > KINDS["cup"].size_m[1] and KINDS["floor"].size_m[0] > KINDS["mug"].size_m[1]
    for k in KINDS.values():
        assert 0.03 <= k.size_m[0] < k.size_m[1] <= 3.0, k


def test_catalogue_objects_follow_their_kind():
    """Every catalogue object's sound is its kind's material and family, at a size inside the kind's range."""
    cat = catalogue(WorldConfig(sites=20, objects_per_site=8))
    counts: Counter = Counter()
    for site in cat.sites:
        scene = site.scene
        assert [o.kind.name for o in site.objects[:len(scene.anchors)]] == list(scene.anchors[:8])
        for o in site.objects:
            assert o.kind.name in scene.anchors or o.kind.name in scene.extras, (site.id, o.kind.name)
            s = o.sound
            assert (s.material, s.family) == (o.kind.material, o.kind.family)
            assert o.kind.size_m[0] <= s.size_m <= o.kind.size_m[1]
            assert o.id.startswith(site.id + "-o") and cat.object(o.id) is o
            counts[s.material] += 1
    assert set(counts) == set(PAPER_MATERIALS)
    # the first 8 sites (one of each of 8 scenes) already hold every material at least twice as an anchor
    first = Counter(KINDS[k].material for name in SCENE_CYCLE[:8] for k in SCENES[name].anchors[:3])
    assert all(first[m] >= 2 for m in PAPER_MATERIALS), first


def test_catalogue_seeded_apart_from_the_world():
    """Same catalogue settings, any world.seed: the same sites; more sites extend fewer; another catalogue seed differs."""
    a = catalogue(WorldConfig(seed=0, sites=6, objects_per_site=5)).summary()
    b = catalogue(WorldConfig(seed=7, videos=99, sites=6, objects_per_site=5)).summary()
    assert a == b
    bigger = catalogue(WorldConfig(sites=9, objects_per_site=5)).summary()
    assert bigger["sites"][:6] == a["sites"]
    other = catalogue(WorldConfig(catalogue_seed=1, sites=6, objects_per_site=5)).summary()
    assert [s["scene"] for s in other["sites"]] == [s["scene"] for s in a["sites"]]  # scenes cycle
    assert other["sites"] != a["sites"]  # the objects, acoustics and looks differ
    # fresh draws, not the cache: a site is a pure function of (catalogue seed, index, objects per site)
    assert make_site(0, 3, 5).summary() == a["sites"][3]


def test_videos_visit_every_site_evenly():
    counts = Counter(site_of_video(4, i, 5) for i in range(23))
    assert sorted(counts) == [0, 1, 2, 3, 4] and max(counts.values()) - min(counts.values()) <= 1
    assert [site_of_video(4, i, 5) for i in range(10)] == [site_of_video(4, i, 5) for i in range(10)]


def test_recurring_objects_across_videos(site_world):
    """Objects recur: struck in several videos with identical modes; test videos strike objects training struck too."""
    out, world, summary = site_world
    split = _split(out)
    modes_of: dict[str, set] = defaultdict(set)
    videos_of: dict[str, set] = defaultdict(set)
    site_of_video_truth = {}
    for t in _truths(out):
        site_of_video_truth[t["id"]] = t["site"]["id"]
        for ev in t["events"]:
            assert ev["site"] == t["site"]["id"] and ev["object_id"].startswith(ev["site"] + "-o")
            obj = next(o for o in t["objects"] if o["id"] == ev["object_id"])
            assert (obj["kind"], obj["material"]) == (ev["kind"], ev["material"])
            modes_of[ev["object_id"]].add(tuple(ev["modes"]["freq_hz"]))
            videos_of[ev["object_id"]].add(t["id"])
    recurring = [o for o, v in videos_of.items() if len(v) >= 2]
    assert len(recurring) >= 3, dict(videos_of)
    # one object, one set of mode frequencies, in every video and strike (only power and decay vary per strike)
    assert all(len(m) == 1 for m in modes_of.values())
    # the split is by video, and test videos strike objects that training videos struck too
    train_obj = {o for o, vs in videos_of.items() if any(split[v] == "train" for v in vs)}
    test_obj = {o for o, vs in videos_of.items() if any(split[v] == "test" for v in vs)}
    assert test_obj & train_obj
    assert summary["objects_struck"]["test_also_in_train"] == len(test_obj & train_obj)
    # every site was filmed, (nearly) equally often
    per_site = Counter(site_of_video_truth.values())
    assert len(per_site) == world.sites and max(per_site.values()) - min(per_site.values()) <= 1


def test_same_object_struck_several_times_in_a_row(site_world):
    out, world, _ = site_world
    runs = []
    for t in _truths(out):
        ids = [ev["object_id"] for ev in t["events"]]
        n = 1
        for a, b in zip(ids, ids[1:]):
            if a == b:
                n += 1
            else:
                runs.append(n)
                n = 1
        runs.append(n)
        assert len(set(ids)) <= world.objects_per_video
    assert np.mean(runs) >= 2.0, runs  # runs of mean hits_per_object = 4 (truncated at the end of the video)


def test_unseen_sites_really_unseen(site_world):
    """Videos at held-out sites are test-only; no training video was recorded there or struck their objects."""
    out, world, summary = site_world
    held = set(summary["held_out_sites"])
    assert held == {f"s{i:02d}" for i in held_out_indices(world.catalogue_seed, world.sites, world.unseen_sites)}
    assert len(held) == 1
    split = _split(out)
    held_videos = [t for t in _truths(out) if t["site"]["id"] in held]
    assert held_videos and all(split[t["id"]] == "test" and t["site"]["held_out"] for t in held_videos)
    for t in _truths(out):
        if split[t["id"]] == "train":
            assert t["site"]["id"] not in held and not t["site"]["held_out"]
            assert not any(ev["object_id"].split("-")[0] in held for ev in t["events"])
    sites = json.loads((out / "sites.json").read_text())
    assert sites["held_out"] == sorted(held)
    for s in sites["sites"]:
        assert (s["id"] in held) == s["held_out"]
        if s["held_out"]:
            assert s["videos"]["train"] == [] and s["struck"]["train"] == [] and s["videos"]["test"]
    # seen-site videos are split by world.test_fraction as before (at least one test video)
    seen_test = [v for v, sp in split.items() if sp == "test" and v not in {t["id"] for t in held_videos}]
    assert len(seen_test) >= 1


def test_another_world_of_the_catalogue_holds_out_the_same_sites(site_world, tmp_path):
    """The evaluation's classifier world (another world.seed) films the same places and holds out the same sites."""
    out, world, summary = site_world
    other = WorldConfig(**{**SITES, "videos": 3, "hits_per_video": 2, "size": 16})
    s2 = generate_world(tmp_path / "other", other, 11, progress=False)
    assert s2["held_out_sites"] == summary["held_out_sites"]
    a = {o["id"]: o for s in json.loads((out / "sites.json").read_text())["sites"] for o in s["objects"]}
    b = {o["id"]: o for s in json.loads((tmp_path / "other" / "sites.json").read_text())["sites"] for o in s["objects"]}
    assert a == b


def test_config_rejects_impossible_catalogues():
    with pytest.raises(ConfigError, match="world.unseen_sites"):
        WorldConfig(sites=2, unseen_sites=0.8).validate()
    with pytest.raises(ConfigError, match="world.unseen_sites"):
        WorldConfig(unseen_sites=1.0).validate()
    with pytest.raises(ConfigError, match="world.objects_per_video"):
        WorldConfig(objects_per_site=2, objects_per_video=3).validate()
    with pytest.raises(ConfigError, match="world.hits_per_object"):
        WorldConfig(hits_per_object=0.5).validate()
    with pytest.raises(ConfigError, match="world.sites"):
        WorldConfig(sites=0).validate()
