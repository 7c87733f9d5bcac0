"""Generate a synthetic "greatest hits": videos, recordings, annotations and ground truth on disk.

Layout (the real dataset's, so one reader serves both)::

    DIR/<id>_denoised.mp4   H.264 yuv420p, 30000/1001 fps, square frames, AAC mono audio track
    DIR/<id>_denoised.wav   the recording, 96 kHz mono (soundfile; FLOAT by default)
    DIR/<id>_times.txt      "time material action reaction" per event, no header
    DIR/<id>_physics.json   ground truth per event (site, object id, true modes, velocity, room, noise)
    DIR/train.txt, test.txt video ids, split by video (videos at held-out sites: test only)
    DIR/sites.json          the site catalogue: sites, their objects, which are held out, videos per site
    DIR/summary.json        counts (this function's return value)
    DIR/manifest.json       the world manifest: every file name the tool writes into DIR (written first)

``--overwrite`` deletes only the files the world manifest lists; a folder holding anything else (a real
recording, a note, a sub-folder) is refused with the first such file named, so it never deletes what it
did not write.

Video i is recorded at site ``site_of_video(seed, i, world.sites)`` of the catalogue
(:mod:`physdiff.world.sites`, seeded by ``world.catalogue_seed`` alone). Every video draws from its
own generators seeded by (seed, video index, stream), so the bytes of the wav, annotations and ground
truth do not depend on ``workers``, and a video's sound does not depend on the frame size.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import multiprocessing as mp
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from physdiff.errors import PhysdiffError
from physdiff.fileio import atomic_write_json, atomic_write_text
from physdiff.logs import progress_bar
from physdiff.world.config import WorldConfig
from physdiff.world.media import write_mp4, write_wav
from physdiff.world.recording import render_audio
from physdiff.world.render import Renderer
from physdiff.world.scene import VideoPlan, plan_video
from physdiff.world.sites import catalogue, site_of_video

OUTPUT_PATTERNS = ("*_denoised.mp4", "*_denoised.wav", "*_times.txt", "*_physics.json",
                   "train.txt", "test.txt", "sites.json", "summary.json", "config.json")


def video_ids(n: int, seed: int) -> list[str]:
    """Increasing timestamp ids like the real ones (``2015-02-16-16-49-06``): split names on '_' only."""
    rng = np.random.default_rng([seed, 7919])
    t = dt.datetime(2015, 1, 1) + dt.timedelta(days=int(rng.integers(0, 600)), seconds=int(rng.integers(0, 86400)))
    ids = []
    for _ in range(n):
        t += dt.timedelta(seconds=int(rng.integers(60, 1800)))
        ids.append(t.strftime("%Y-%m-%d-%H-%M-%S"))
    return ids


def split_ids(ids: list[str], test_fraction: float, seed: int,
              held_out: set[str] | frozenset[str] = frozenset()) -> tuple[list[str], list[str]]:
    """(train, test), split by video: the ``held_out`` videos (recorded at held-out sites) are test; of the
    others, ``test_fraction`` go to test too (at least one when there are two or more)."""
    pool = [i for i in range(len(ids)) if ids[i] not in held_out]
    n_test = int(round(test_fraction * len(pool)))
    if test_fraction > 0 and len(pool) >= 2:
        n_test = min(max(n_test, 1), len(pool) - 1)
    order = np.random.default_rng([seed, 104729]).permutation(len(pool))
    test = sorted([ids[pool[i]] for i in order[:n_test]] + [v for v in ids if v in held_out])
    train = sorted(ids[pool[i]] for i in order[n_test:])
    return train, test


def _r(x: np.ndarray, nd: int) -> list[float]:
    return [round(float(v), nd) for v in x]


def _ground_truth(vid: str, plan: VideoPlan, world: WorldConfig, modes: list, gain_db: float, frames: int) -> dict:
    from physdiff.world.sound import contact_duration_ms

    rec = plan.recording.summary()
    rec["noise_db"] = round(plan.recording.noise_db + gain_db, 2)
    rec["hum_db"] = round(plan.recording.hum_db + gain_db, 2)
    site = plan.site
    objects = []
    for so in plan.objects:
        d = {"id": so.item.id, "kind": so.item.kind.name, **so.obj.summary()}
        d.update({"picture": {"extent": round(so.frac, 4), "aspect": round(so.aspect, 3), "shape": so.shape,
                              "centre": [round(c, 4) for c in so.centre]}})
        objects.append(d)
    events = []
    for e, m in zip(plan.events, modes):
        so = plan.objects[e.obj]
        events.append({
            "time": round(e.time, 6), "label": e.label, "material": so.obj.material, "action": e.action,
            "reaction": e.reaction, "object": e.obj, "object_id": so.item.id, "kind": so.item.kind.name,
            "site": site.id, "velocity_mps": round(e.velocity, 4),
            "contact_time_s": round(e.time, 6), "contact_ms": round(contact_duration_ms(so.obj, e.velocity), 4),
            "contact_xy": [round(c, 4) for c in e.contact], "drag_s": round(e.drag, 4),
            "room": plan.recording.room.name, "noise_db": rec["noise_db"],
            "modes": {"freq_hz": _r(m.freq, 3), "power_db": _r(m.power, 3), "decay_db_s": _r(m.decay, 3)},
        })
    return {"id": vid, "sample_rate": world.sample_rate, "fps": [world.fps_num, world.fps_den], "size": world.size,
            "frames": frames, "duration_s": round(plan.duration, 6), "clean": world.clean,
            "gain_db": round(gain_db, 4), "sensor_noise": round(plan.sensor_noise, 3),
            "site": {"id": site.id, "scene": site.scene.name, "held_out": site.held_out}, "recording": rec,
            "objects": objects, "events": events}


def make_video(out_dir: Path, world: WorldConfig, seed: int, index: int, vid: str) -> dict[str, Any]:
    """Plan (at its site), render, synthesise and write one video; returns its counts."""
    site = catalogue(world).sites[site_of_video(seed, index, world.sites)]
    plan = plan_video(world, site, np.random.default_rng([seed, index, 0]))
    audio, modes, gain_db = render_audio(plan, world, np.random.default_rng([seed, index, 1]))
    renderer = Renderer(plan, world.size, world.fps, np.random.default_rng([seed, index, 2]))
    base = out_dir / vid
    write_wav(base.with_name(vid + "_denoised.wav"), audio, world.sample_rate, world.wav_subtype)
    frames = write_mp4(base.with_name(vid + "_denoised.mp4"), renderer.frames(), world.size,
                       Fraction(world.fps_num, world.fps_den), audio, world.sample_rate, world.audio_track_rate,
                       world.crf, world.x264_preset)
    lines = [f"{e.time:.6f} {e.label} {e.action} {e.reaction}" for e in plan.events]
    atomic_write_text(base.with_name(vid + "_times.txt"), "\n".join(lines) + "\n")
    truth = _ground_truth(vid, plan, world, modes, gain_db, frames)
    atomic_write_text(base.with_name(vid + "_physics.json"), json.dumps(truth, indent=1) + "\n")
    nbytes = sum(base.with_name(vid + s).stat().st_size
                 for s in ("_denoised.wav", "_denoised.mp4", "_times.txt", "_physics.json"))
    return {"id": vid, "site": site.id, "events": [(e.label, e.action, e.reaction) for e in plan.events],
            "objects": sorted({plan.objects[e.obj].item.id for e in plan.events}),
            "seconds": plan.duration, "frames": frames, "bytes": nbytes}


def _make_video_star(args: tuple) -> dict[str, Any]:
    out_dir, world_dict, seed, index, vid = args
    return make_video(Path(out_dir), WorldConfig(**world_dict), seed, index, vid)


WORLD_MANIFEST = "manifest.json"  # no "_": the per-video files are the ones named <id>_<kind>


def world_files(ids: list[str]) -> list[str]:
    """Every file name a world of videos ``ids`` holds (``OUTPUT_PATTERNS`` per video, then the shared files)."""
    per_video = [p[1:] for p in OUTPUT_PATTERNS if p.startswith("*")]
    return [vid + suffix for vid in ids for suffix in per_video] + [p for p in OUTPUT_PATTERNS if not p.startswith("*")]


def _recorded_files(out_dir: Path) -> set[str] | None:
    """The file names a previous world in ``out_dir`` recorded as its own; None when nothing says so.

    The world manifest, else (a world written before manifests existed) the ids its ``summary.json`` lists,
    provided its ``config.json`` carries the world hash only this tool writes.
    """
    man = out_dir / WORLD_MANIFEST
    try:
        if man.is_file():
            rec = json.loads(man.read_text())
            if rec.get("tool") != "physdiff synth":
                return None  # someone else's manifest.json
            names = rec["files"]
            if not all(isinstance(n, str) and n and "/" not in n and n not in (".", "..") for n in names):
                raise PhysdiffError(f"{man} lists a name that is not a plain file name; refusing to --overwrite")
            return set(names)
        summary, config = json.loads((out_dir / "summary.json").read_text()), json.loads((out_dir / "config.json").read_text())
        if "world_hash" in config and isinstance(summary.get("train"), list) and isinstance(summary.get("test"), list):
            return set(world_files([str(i) for i in summary["train"] + summary["test"]]))
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None
    return None


def _is_temp_of(name: str, recorded: set[str]) -> bool:
    """A temporary sibling ``.<recorded>.<pid>-<token>.tmp`` of one of our files (a write killed mid-way)."""
    from physdiff.fileio import is_temp

    return is_temp(name) and any(name.startswith(f".{r}.") for r in recorded | {WORLD_MANIFEST})


def _prepare(out_dir: Path, overwrite: bool, files: list[str]) -> None:
    """Check ``out_dir`` (empty, or with ``overwrite`` only files a previous world recorded), clear it, record ``files``."""
    from physdiff.fileio import atomic_write_json

    if out_dir.exists() and not out_dir.is_dir():
        raise PhysdiffError(f"{out_dir} exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise PhysdiffError(f"{out_dir} is not empty; pass overwrite=True (--overwrite) to replace its world")
        entries = sorted(out_dir.iterdir())
        recorded = _recorded_files(out_dir)
        if recorded is None:
            raise PhysdiffError(f"refusing to --overwrite {out_dir}: it holds no world manifest ({WORLD_MANIFEST} of "
                                f"physdiff synth), so nothing says physdiff synth wrote {entries[0]} (or any file there); "
                                "delete what you no longer need yourself, or choose another --out")
        foreign = [p for p in entries if p.name != WORLD_MANIFEST and not (p.is_file() and p.name in recorded)
                   and not _is_temp_of(p.name, recorded)]
        if foreign:
            more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
            raise PhysdiffError(f"refusing to --overwrite {out_dir}: {foreign[0]}{more} is not a file physdiff synth "
                                f"wrote (not in {WORLD_MANIFEST}); move it away or choose another --out")
        for p in entries:  # only what the manifest lists (and our temporaries); the manifest itself last
            if p.name != WORLD_MANIFEST:
                p.unlink()
        (out_dir / WORLD_MANIFEST).unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Recorded before any file is written: an interrupted world can still be overwritten.
    atomic_write_json(out_dir / WORLD_MANIFEST, {"tool": "physdiff synth", "files": files}, indent=1)


def generate_world(out_dir: str | Path, world: WorldConfig, seed: int | None = None, *, overwrite: bool = False,
                   progress: bool = True) -> dict:
    """Write ``world.videos`` videos into ``out_dir`` (see the module docstring); returns the summary.

    Raises PhysdiffError if out_dir is non-empty and ``overwrite`` is False. The summary holds videos,
    events, sites, held-out sites, videos per site, objects struck per split (and how many test objects
    a training video struck too), per-material/action/reaction counts, train/test ids, content seconds,
    bytes, wall seconds.
    """
    world.validate()
    seed = world.seed if seed is None else seed
    out_dir = Path(out_dir)
    ids = video_ids(world.videos, seed)
    _prepare(out_dir, overwrite, world_files(ids))
    t0 = time.perf_counter()
    jobs = [(str(out_dir), dataclasses.asdict(world), seed, i, vid) for i, vid in enumerate(ids)]
    results: list[dict[str, Any]] = []
    bar = progress_bar(len(jobs), "[world] videos", enabled=progress)
    if world.workers > 1 and len(jobs) > 1:
        # fork where it exists: workers only use numpy/scipy/PyAV, and it works from any __main__
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        with ProcessPoolExecutor(max_workers=min(world.workers, len(jobs)), mp_context=ctx) as pool:
            futures = [pool.submit(_make_video_star, j) for j in jobs]
            for fut in as_completed(futures):
                results.append(fut.result())
                bar.update(1)
    else:
        for j in jobs:
            results.append(_make_video_star(j))
            bar.update(1)
    bar.close()
    results.sort(key=lambda r: r["id"])
    cat = catalogue(world)
    held = {r["id"] for r in results if r["site"] in cat.held_out}
    train, test = split_ids(ids, world.test_fraction, seed, held)
    atomic_write_text(out_dir / "train.txt", "".join(i + "\n" for i in train))
    atomic_write_text(out_dir / "test.txt", "".join(i + "\n" for i in test))
    split = {v: "train" for v in train} | {v: "test" for v in test}
    sites = cat.summary()
    for s in sites["sites"]:  # which videos were recorded where, and which objects each split struck
        mine = [r for r in results if r["site"] == s["id"]]
        s["videos"] = {sp: [r["id"] for r in mine if split[r["id"]] == sp] for sp in ("train", "test")}
        s["struck"] = {sp: sorted({o for r in mine if split[r["id"]] == sp for o in r["objects"]}) for sp in ("train", "test")}
    atomic_write_text(out_dir / "sites.json", json.dumps(sites, indent=1) + "\n")
    events = [ev for r in results for ev in r["events"]]
    train_objects = {o for r in results if split[r["id"]] == "train" for o in r["objects"]}
    test_objects = {o for r in results if split[r["id"]] == "test" for o in r["objects"]}
    summary = {
        "out_dir": str(out_dir), "seed": seed, "catalogue_seed": world.catalogue_seed, "videos": len(results),
        "events": len(events), "sites": world.sites, "held_out_sites": sorted(cat.held_out),
        "videos_per_site": dict(sorted(Counter(r["site"] for r in results).items())),
        "objects_struck": {"train": len(train_objects), "test": len(test_objects),
                           "test_also_in_train": len(test_objects & train_objects)},
        "materials": dict(sorted(Counter(ev[0] for ev in events).items())),
        "actions": dict(sorted(Counter(ev[1] for ev in events).items())),
        "reactions": dict(sorted(Counter(ev[2] for ev in events).items())),
        "train": train, "test": test,
        "frames": sum(r["frames"] for r in results),
        "seconds": round(sum(r["seconds"] for r in results), 3),
        "bytes": sum(r["bytes"] for r in results),
        "wall_seconds": round(time.perf_counter() - t0, 3),
    }
    atomic_write_json(out_dir / "summary.json", summary, indent=1)  # last: it marks the world complete
    return summary


def world_hash(cfg: Any) -> str:
    """Identity of a world: the ``world`` section (semantic fields, ``world.seed`` included) of a root Config."""
    from physdiff.identity import artifact_hash

    return artifact_hash(cfg, "world")


def world_is_complete(cfg: Any, out_dir: str | Path) -> bool:
    """``out_dir`` already holds exactly the world of ``cfg`` (written completely, same world identity)."""
    out = Path(out_dir)
    previous = out / "config.json"
    if not (previous.is_file() and (out / "summary.json").is_file()):
        return False
    try:
        return json.loads(previous.read_text()).get("world_hash") == world_hash(cfg)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False


def ensure_world(cfg: Any, out_dir: str | Path | None = None, *, overwrite: bool = False,
                 progress: bool = True) -> tuple[Path, dict | None]:
    """Generate the world of a root Config unless ``out_dir`` already holds exactly it (cached).

    ``out_dir`` defaults to the world's place in the data folder (:func:`physdiff.identity.world_dir`).
    Returns (folder, summary or None when cached). Writes the resolved config (plus ``world_hash``)
    as ``config.json``; a non-empty folder holding anything else is refused unless ``overwrite``.
    """
    from physdiff.fileio import atomic_write_json
    from physdiff.identity import world_dir

    out = Path(out_dir) if out_dir is not None else world_dir(cfg)
    if not overwrite and world_is_complete(cfg, out):
        return out, None
    summary = generate_world(out, cfg.world, overwrite=overwrite, progress=progress)
    resolved = cfg.to_dict()
    resolved["world_hash"] = world_hash(cfg)  # what the cache check compares: the world section
    atomic_write_json(out / "config.json", resolved, sort_keys=True)
    return out, summary
