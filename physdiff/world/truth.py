"""Per-clip ground truth of a generated world, by shard key, and what retrieval found.

The shard builder names a clip ``<video id>_<onset sample>`` (onset at ``audio.sample_rate``). This
module joins those keys to the world's ``<id>_physics.json``: which site, which object (its id and
kind), which material, and whether the clip's site is held out or its object was struck in a
training video. The evaluation uses it to say how often nu-retrieval (the nearest training clip by
the video stage's features, the paper's inference step) returns a clip of the *same object* or of
the *same material*, and to report the held-out-site clips apart.

    truth = clip_truth("data/world/tiny", sample_rate=16000)       # {key: ClipTruth}
    rates = retrieval_agreement(test_keys, test_nu, train_keys, train_nu, truth)
    rates["all"]["same_object"], rates["unseen_site"]["same_material"]

Only the world's own files are read (no shards, no stages).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from physdiff.data import layout
from physdiff.errors import DataError


@dataclass(frozen=True)
class ClipTruth:
    """What one clip really is."""

    key: str
    video_id: str
    split: str  # "train" | "test"
    site: str  # "s03"
    object_id: str  # "s03-o2"
    kind: str  # "railing"
    material: str  # the true material (also when the annotation says "None")
    held_out_site: bool  # recorded at a site no training video visits (world.unseen_sites)
    object_in_train: bool  # some training clip of this world (paper subset: a static hit, annotated) is of this object


def clip_key(video_id: str, time_s: float, sample_rate: int) -> str:
    """The shard builder's key of an event at ``time_s`` (physdiff.data.build: onset sample at the clip rate)."""
    return f"{video_id}_{int(round(time_s * sample_rate))}"


def clip_truth(world_dir: str | Path, sample_rate: int) -> dict[str, ClipTruth]:
    """{shard key: ClipTruth} for every annotated event of a generated world (all actions and reactions).

    Raises DataError naming the file when the folder is not a v2 world (no site / object ids).
    """
    world_dir = Path(world_dir)
    splits = layout.read_split_files(world_dir)
    if splits is None:
        raise DataError(f"{world_dir} has no train.txt / test.txt: not a generated world")
    rows: list[tuple[str, str, dict[str, Any]]] = []
    for vid, split in sorted(splits.items()):
        path = world_dir / f"{vid}_physics.json"
        if not path.is_file():
            raise DataError(f"missing ground truth {path}")
        truth = json.loads(path.read_text())
        events, _ = layout.parse_times(world_dir / f"{vid}_times.txt", vid)  # the times the builder keys by
        if len(events) != len(truth["events"]):
            raise DataError(f"{path}: {len(truth['events'])} events but {len(events)} lines in the times file")
        for ev, t in zip(events, truth["events"]):
            if "object_id" not in t:
                raise DataError(f"{path}: events carry no object_id (a world from before the site catalogue)")
            rows.append((clip_key(vid, ev.time, sample_rate), split, {**t, "video_id": vid,
                                                                       "held_out": truth["site"]["held_out"]}))
    # what the models learn from: training clips of the paper subset (hit + static + the true label annotated)
    train_objects = {r["object_id"] for _, split, r in rows if split == "train" and r["action"] == "hit"
                     and r["reaction"] == "static" and r["label"] == r["material"]}
    return {key: ClipTruth(key, r["video_id"], split, r["site"], r["object_id"], r["kind"], r["material"],
                           bool(r["held_out"]), r["object_id"] in train_objects)
            for key, split, r in rows}


def nearest(query: np.ndarray, reference: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """Index of the Euclidean-nearest reference row for every query row: (Q,) from (Q, D) and (R, D)."""
    q = np.asarray(query, np.float64)
    r = np.asarray(reference, np.float64)
    rr = (r**2).sum(1)  # (R,)
    out = np.empty(q.shape[0], np.int64)
    for i in range(0, q.shape[0], chunk):
        d = rr[None, :] - 2.0 * q[i:i + chunk] @ r.T  # (q, R): |q|^2 is the same for every reference
        out[i:i + chunk] = d.argmin(1)
    return out


def retrieval_agreement(query_keys: Sequence[str], query_nu: np.ndarray, ref_keys: Sequence[str],
                        ref_nu: np.ndarray, truth: dict[str, ClipTruth]) -> dict[str, dict[str, float]]:
    """How often the nearest reference clip (Euclidean on nu) is the same object / material / site.

    Returns {"all" | "seen_site" | "unseen_site" | "object_in_train" | "object_not_in_train":
    {"clips", "same_object", "same_material", "same_site"}} (rates in [0, 1]; a subset without clips
    has clips 0 and NaN rates). Keys missing from ``truth`` are a DataError (wrong world).
    """
    missing = [k for k in list(query_keys) + list(ref_keys) if k not in truth]
    if missing:
        raise DataError(f"{len(missing)} clip keys are not in this world's ground truth (first: {missing[0]})")
    idx = nearest(query_nu, ref_nu)
    q = [truth[k] for k in query_keys]
    r = [truth[ref_keys[int(i)]] for i in idx]
    same = {"same_object": np.array([a.object_id == b.object_id for a, b in zip(q, r)]),
            "same_material": np.array([a.material == b.material for a, b in zip(q, r)]),
            "same_site": np.array([a.site == b.site for a, b in zip(q, r)])}
    subsets = {"all": np.ones(len(q), bool),
               "seen_site": np.array([not a.held_out_site for a in q]),
               "unseen_site": np.array([a.held_out_site for a in q]),
               "object_in_train": np.array([a.object_in_train for a in q]),
               "object_not_in_train": np.array([not a.object_in_train for a in q])}
    out: dict[str, dict[str, float]] = {}
    for name, mask in subsets.items():
        n = int(mask.sum())
        out[name] = {"clips": n, **{k: (float(v[mask].mean()) if n else float("nan")) for k, v in same.items()}}
    return out
