"""The shard writer: a Greatest Hits layout folder -> WebDataset tar shards with physics, per split.

Work is planned in the driver and done in tasks (local processes or a SLURM job array):

1. ``plan_build``: parse every ``<id>_times.txt`` (cheap), assign each video to a split (root
   train.txt / test.txt, else a hash of its id) and group the videos of a split into tasks of about
   ``samples_per_shard * shards_per_task`` selected events. Grouping is a pure function of the
   source and the config, so a rerun finds the same tasks.
2. ``run_task``: for each video of the group, load the wav once, decode the video once, cut the
   clips, estimate the modes in batches (``physdiff.physics.estimate_modes``), and write the group's
   shards ``<split>/<split>-<task>-<k>.tar`` (temporary name, then rename) plus a part record
   ``_parts/<split>-<task>.json`` with every shard's count and sha256 and every skipped event.
3. ``finalize``: merge the part records into ``<split>/manifest.json`` and ``summary.json``.

Resumable: a task whose part record matches the task fingerprint and whose shards are on disk with
the recorded size and sha256 is not redone. Every annotated event (a non-blank times-file line) ends
up written or skipped with a reason, so written + skipped = annotated.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from physdiff.checksum import file_sha256
from physdiff.data import layout, media, sample
from physdiff.data.labels import UNKNOWN, material_index
from physdiff.errors import DataError
from physdiff.identity import artifact_hash, sections_dict
from physdiff.fileio import atomic_output, atomic_write_text, sweep_temps, write_text_if_changed

FORMAT = "physdiff-shards/1"
PARTS_DIR = "_parts"


# ----------------------------------------------------------------------------- records


@dataclass
class Skip:
    """One annotated event that was not written, and why. ``kind``: "bad" (input problem) or "filtered" (subset)."""

    video_id: str
    line: int | None
    reason: str
    file: str
    kind: str = "bad"
    time: float | None = None
    material: str | None = None


@dataclass
class Task:
    """A group of videos of one split, processed by one process / one SLURM array task."""

    split: str
    index: int
    video_ids: list[str]
    fingerprint: str = ""

    @property
    def name(self) -> str:
        return f"{self.split}-{self.index:05d}"


@dataclass
class Plan:
    source: str
    tasks: list[Task]
    unassigned: list[Skip] = field(default_factory=list)  # events of videos in no split
    skipped_videos: list[dict[str, Any]] = field(default_factory=list)  # e.g. missing times file (0 events)
    annotated: dict[str, int] = field(default_factory=dict)  # per split (+ "unassigned")


class StrictError(DataError):
    """--strict: a skip became an error; the message names the file."""


def skip_category(reason: str) -> str:
    """Group reasons for the summary table: the text before the first ':' or ' (' ."""
    return reason.split(":")[0].split(" (")[0]


# ----------------------------------------------------------------------------- planning


def shards_identity(cfg: Any, length: int = 10) -> str:
    """The hash of what the shards depend on (physdiff.identity: world, audio, physics, shards), nothing else.

    So a resumed build is not refused, nor its tasks redone, because e.g. ``diffusion.width`` changed.
    """
    return artifact_hash(cfg, "shards", length=length)


def _fingerprint(cfg: Any, source: Path, task: Task) -> str:
    """What a task's output depends on: the semantic config, the source folder and its annotation files."""
    h = hashlib.sha256()
    h.update(shards_identity(cfg, 32).encode())
    h.update(str(source.resolve()).encode())
    h.update(f"{task.split}/{task.index}".encode())
    for vid in task.video_ids:
        v = layout.Video(vid, source)
        h.update(vid.encode())
        for p in (v.times, v.wav, v.video, v.thumb):
            st = p.stat() if p.exists() else None
            h.update(f"{p.name}:{st.st_size if st else -1}:{st.st_mtime_ns if st else -1}".encode())
    return h.hexdigest()[:32]


def plan_build(source: str | Path, cfg: Any) -> Plan:
    """Parse annotations, assign splits, group videos into tasks (deterministic)."""
    source = Path(source)
    sc = cfg.shards
    ids = layout.list_video_ids(source)
    if not ids:
        raise DataError(f"no Greatest Hits files (<id>_times.txt, <id>_denoised.mp4, ...) in {source}")
    split_files = layout.read_split_files(source)
    per_split: dict[str, list[tuple[str, int, int]]] = {s: [] for s in layout.SPLITS}  # (video, selected, annotated)
    plan = Plan(str(source), [])
    plan.annotated = {s: 0 for s in layout.SPLITS}
    for vid in ids:
        v = layout.Video(vid, source)
        if not v.times.exists():
            plan.skipped_videos.append({"video_id": vid, "reason": "missing times file", "file": str(v.times), "events": 0})
            continue
        try:
            events, bad = layout.parse_times(v.times, vid)
        except DataError as e:
            plan.skipped_videos.append({"video_id": vid, "reason": str(e), "file": str(v.times), "events": 0})
            continue
        n_annot = len(events) + len(bad)
        if split_files is not None:
            split = split_files.get(vid)
        else:
            split = layout.hash_split(vid, sc.test_fraction)
        if split is None:
            reason = "video listed in neither train.txt nor test.txt"
            plan.unassigned += [Skip(vid, e.line, reason, str(v.times), "filtered", e.time, e.material) for e in events]
            plan.unassigned += [Skip(vid, b.line, reason, str(v.times), "filtered") for b in bad]
            plan.annotated["unassigned"] = plan.annotated.get("unassigned", 0) + n_annot
            continue
        n_sel = sum(layout.subset_reason(e, sc.subset) is None for e in events)
        per_split[split].append((vid, n_sel, n_annot))
    # The validation split: a share of the training videos, by video (layout.validation_videos).
    held = layout.validation_videos([v for v, _, _ in per_split["train"]], sc.val_fraction)
    per_split[layout.VALIDATION] = [t for t in per_split["train"] if t[0] in held]
    per_split["train"] = [t for t in per_split["train"] if t[0] not in held]
    for split, vids in per_split.items():
        plan.annotated[split] += sum(n for _, _, n in vids)
    # Group: accumulate videos until the group holds ~shards_per_task full shards of selected events.
    target = max(1, sc.samples_per_shard * sc.shards_per_task)
    for split, vids in per_split.items():
        group: list[str] = []
        count = 0
        index = 0
        for vid, n_sel, _ in vids:
            group.append(vid)
            count += n_sel
            if count >= target:
                plan.tasks.append(Task(split, index, group))
                index, group, count = index + 1, [], 0
        if group:
            plan.tasks.append(Task(split, index, group))
    for t in plan.tasks:
        t.fingerprint = _fingerprint(cfg, source, t)
    return plan


# ----------------------------------------------------------------------------- one task


@dataclass
class _Clip:
    key: str
    audio: np.ndarray  # (T,) float32, already quantised to what the FLAC stores
    gain: float
    frames: list[np.ndarray]  # num_frames x (S, S, 3) uint8
    meta: dict[str, Any]


def _video_clips(v: layout.Video, split: str, cfg: Any, skips: list[Skip], strict: bool,
                 notes: list[dict[str, Any]] | None = None) -> list[_Clip]:
    """All clips of one video (wav loaded once, video decoded once); appends a Skip for every event not kept.

    ``notes`` collects recordings kept with a caveat (a band-limited wav: below ``audio.sample_rate``).
    """
    ac, sc = cfg.audio, cfg.shards

    def skip(line: int | None, reason: str, file: Path, kind: str = "bad", ev: layout.Event | None = None) -> None:
        if strict and kind == "bad":
            raise StrictError(f"{reason} ({file}" + (f", line {line})" if line else ")"))
        skips.append(Skip(v.video_id, line, reason, str(file), kind, ev.time if ev else None, ev.material if ev else None))

    events, bad = layout.parse_times(v.times, v.video_id)
    for b in bad:
        skip(b.line, f"bad times line: {b.reason}: {b.text!r}", v.times)
    selected: list[layout.Event] = []
    for e in events:
        why = layout.subset_reason(e, sc.subset)
        if why is None:
            selected.append(e)
        else:
            # The dataset's own "None" label and subset exclusions are filtering, not bad input.
            kind = "bad" if why.startswith("unknown material") and e.material != UNKNOWN else "filtered"
            skip(e.line, why, v.times, kind, e)
    if not selected:
        return []
    if "." in v.video_id or "/" in v.video_id:
        for e in selected:
            skip(e.line, "video id contains '.', unusable as a WebDataset key", v.times, ev=e)
        return []
    try:
        rec = media.load_recording(v.wav, ac.sample_rate)
    except DataError as e:
        for ev in selected:
            skip(ev.line, str(e), v.wav, ev=ev)
        return []
    audio = rec.audio  # (N,)
    band_limited = media.band_limited_reason(rec.native_rate, ac.sample_rate)
    if band_limited is not None:
        if strict:
            raise StrictError(f"{band_limited} ({v.wav})")
        import warnings

        warnings.warn(f"{v.wav}: {band_limited}; kept (recorded in the manifest's band_limited list; --strict refuses it)",
                      media.BandLimitedWarning, stacklevel=2)
    src = v.frames_source()
    nf = sc.num_frames
    # Frame indices need the fps, which needs the file open; open it once for the rate, decode once.
    try:
        fps = media.video_fps(src)
    except DataError as e:
        for ev in selected:
            skip(ev.line, str(e), src, ev=ev)
        return []
    wanted = media.window_wanted([media.onset_frame(ev.time, fps) for ev in selected], nf)
    try:
        vf = media.decode_frames(src, wanted, sc.frame_size)
    except DataError as e:
        for ev in selected:
            skip(ev.line, str(e), src, ev=ev)
        return []
    clips: list[_Clip] = []
    seen: dict[str, int] = {}
    for ev in selected:
        onset = int(round(ev.time * ac.sample_rate))
        key = f"{v.video_id}_{onset}"
        if onset >= audio.shape[0]:
            skip(ev.line, f"onset past end of audio ({ev.time:.3f} s >= {audio.shape[0] / ac.sample_rate:.3f} s)", v.wav, ev=ev)
            continue
        f0 = media.onset_frame(ev.time, vf.fps)
        if f0 >= vf.num_frames:
            skip(ev.line, f"onset past end of video (frame {f0} >= {vf.num_frames} frames)", src, ev=ev)
            continue
        if key in seen:
            skip(ev.line, f"duplicate onset: same clip as line {seen[key]}", v.times, ev=ev)
            continue
        clip = media.cut_clip(audio, onset, ac.num_samples)  # (T,)
        if not np.isfinite(clip).all():
            skip(ev.line, "non-finite audio in clip", v.wav, ev=ev)
            continue
        if float(np.max(np.abs(clip))) <= 0.0:
            skip(ev.line, "silent audio clip", v.wav, ev=ev)
            continue
        seen[key] = ev.line
        idx, clamped = media.frame_window(f0, nf, vf.num_frames)  # clamped at the ends of the video
        gain = sample.audio_gain(clip)
        meta = {
            "key": key,
            "video_id": v.video_id,
            "line": ev.line,
            "material": ev.material,
            "material_index": material_index(ev.material),
            "action": ev.action,
            "reaction": ev.reaction,
            "onset_seconds": ev.time,
            "onset_sample": onset,
            "onset_frame": f0,
            "frame_indices": idx,
            "frames_clamped": clamped,
            "sample_rate": ac.sample_rate,
            "num_samples": ac.num_samples,
            "fps": float(vf.fps),
            "fps_fraction": f"{vf.fps.numerator}/{vf.fps.denominator}",
            "frame_size": sc.frame_size,
            "audio_gain": gain,
            "source_wav": str(v.wav),
            "source_video": str(src),
            "split": split,
        }
        clips.append(_Clip(key, sample.quantize_audio(clip, gain), gain, [vf.frames[i] for i in idx], meta))
    if band_limited is not None and notes is not None:
        notes.append({"video_id": v.video_id, "file": str(v.wav), "sample_rate": rec.native_rate,
                      "target_rate": ac.sample_rate, "clips": len(clips), "reason": band_limited})
    return clips


def _estimate(clips: list[_Clip], cfg: Any) -> list[np.ndarray]:
    """Modes (3, D) per clip, estimated in batches (physdiff.physics.estimate_modes, Sec. 3.1)."""
    import torch

    from physdiff.physics import estimate_modes

    ac = cfg.audio
    out: list[np.ndarray] = []
    bs = max(1, cfg.shards.physics_batch)
    for i in range(0, len(clips), bs):
        batch = torch.from_numpy(np.stack([c.audio for c in clips[i : i + bs]]))  # (B, T)
        with torch.no_grad():
            modes = estimate_modes(
                batch, ac.sample_rate, n_fft=ac.n_fft, hop_length=ac.hop_length, floor_db=ac.floor_db,
                method=cfg.physics.estimator, decay_convention=cfg.physics.decay_convention,
                **cfg.physics.estimator_options(),
            ).stack()  # (B, 3, D)
        m = modes.detach().cpu().numpy().astype(np.float32)
        out.extend(m[j] for j in range(m.shape[0]))
    return out


def _add_member(tf: "tarfile.TarFile", name: str, data: bytes) -> None:
    import io
    import tarfile

    ti = tarfile.TarInfo(name)
    ti.size, ti.mtime, ti.mode = len(data), 0, 0o444  # fixed mtime: a shard is a pure function of its content
    tf.addfile(ti, io.BytesIO(data))


def _write_shard(path: Path, clips: list[_Clip], modes: list[np.ndarray], cfg: Any) -> dict[str, Any]:
    """Write one tar (temporary name, then rename): returns its manifest entry.

    Plain USTAR headers (webdataset's TarWriter writes PAX ones, two headers per member, which
    doubles the reader's header parsing); members of a sample are adjacent, as WebDataset expects.
    """
    import tarfile

    q = cfg.shards.jpeg_quality
    with atomic_output(path) as tmp, open(tmp, "wb") as f, tarfile.open(fileobj=f, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for c, m in zip(clips, modes):
            sample.check_key(c.key)
            jpgs, lengths = sample.encode_frames(c.frames, q)
            meta = dict(c.meta, frame_bytes=lengths)
            _add_member(tf, f"{c.key}.{sample.AUDIO_EXT}", sample.encode_audio(c.audio, cfg.audio.sample_rate, c.gain))
            _add_member(tf, f"{c.key}.{sample.MODES_EXT}", sample.encode_npy(m))
            _add_member(tf, f"{c.key}.{sample.META_EXT}", sample.encode_meta(meta))
            _add_member(tf, f"{c.key}.{sample.FRAMES_EXT}", jpgs)
    return {"name": f"{path.parent.name}/{path.name}", "count": len(clips), "bytes": path.stat().st_size, "sha256": file_sha256(path)}


def part_path(out: Path, task: Task) -> Path:
    return out / PARTS_DIR / f"{task.name}.json"


def task_done(out: Path, task: Task) -> dict[str, Any] | None:
    """The part record when the task's output is complete and matches (resume); None to redo it."""
    p = part_path(out, task)
    if not p.exists():
        return None
    try:
        part = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if part.get("fingerprint") != task.fingerprint:
        return None
    for s in part["shards"]:
        f = out / s["name"]
        if not f.exists() or f.stat().st_size != s["bytes"] or file_sha256(f) != s["sha256"]:
            return None
    return part


def run_task(task: Task, source: str, out: str, cfg_dict: dict[str, Any], strict: bool = False) -> dict[str, Any]:
    """Process one group of videos and write its shards + part record. Importable for submitit / processes."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one task per core: parallelism comes from tasks, not intra-op threads
    try:
        return _run_task(task, source, out, cfg_dict, strict)
    finally:
        # inline (shards.workers <= 1) the task runs in the caller's process: the main job's later
        # training stages must get their threads back (they ran on one core before this was restored)
        torch.set_num_threads(threads)


def _run_task(task: Task, source: str, out: str, cfg_dict: dict[str, Any], strict: bool) -> dict[str, Any]:
    from physdiff.config import Config
    from physdiff.configlib import from_dict

    cfg = from_dict(Config, cfg_dict)
    src, out_p = Path(source), Path(out)
    done = task_done(out_p, task)
    if done is not None:
        done["reused"] = True
        return done
    t0 = time.time()
    split_dir = out_p / task.split
    split_dir.mkdir(parents=True, exist_ok=True)
    for old in split_dir.glob(f"{task.name}-*.tar*"):  # a stale or partial earlier attempt of this task
        old.unlink()
    skips: list[Skip] = []
    clips: list[_Clip] = []
    notes: list[dict[str, Any]] = []
    for vid in task.video_ids:
        clips += _video_clips(layout.Video(vid, src), task.split, cfg, skips, strict, notes)
    modes = _estimate(clips, cfg) if clips else []
    sps = max(1, cfg.shards.samples_per_shard)
    shards = []
    for k in range(math.ceil(len(clips) / sps)):
        sl = slice(k * sps, (k + 1) * sps)
        shards.append(_write_shard(split_dir / f"{task.name}-{k:03d}.tar", clips[sl], modes[sl], cfg))
    annotated = sum(
        sum(1 for _ in filter(None, (l.strip() for l in layout.Video(v, src).times.read_text().splitlines())))
        for v in task.video_ids
    )
    part = {
        "task": task.name,
        "split": task.split,
        "fingerprint": task.fingerprint,
        "video_ids": task.video_ids,
        "shards": shards,
        "written": len(clips),
        "annotated": annotated,
        "skipped": [asdict(s) for s in skips],
        "band_limited": notes,  # recordings below audio.sample_rate, kept (their clips lack the top band)
        "seconds": round(time.time() - t0, 3),
    }
    if part["written"] + len(skips) != annotated:  # an accounting bug, never bad input
        raise RuntimeError(f"task {task.name}: written {len(clips)} + skipped {len(skips)} != annotated {annotated}")
    pp = part_path(out_p, task)
    pp.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(pp, json.dumps(part, indent=1))
    part["reused"] = False
    return part


# ----------------------------------------------------------------------------- driver


def check_output(out: Path, cfg: Any, source: Path, overwrite: bool) -> None:
    """Refuse to mix shards built from another config or source into one folder (unless overwrite)."""
    prev = out / "build.json"
    if prev.exists():
        info = json.loads(prev.read_text())
        same = info.get("config_hash") == shards_identity(cfg, 32) and info.get("source") == str(source.resolve())
        if not same:
            if not overwrite:
                raise DataError(
                    f"{out} holds shards built from another config or source ({prev}); pass --overwrite or choose a new --out"
                )
            for d in [out / s for s in layout.SPLITS] + [out / PARTS_DIR]:
                shutil.rmtree(d, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    write_text_if_changed(out / "build.json", json.dumps({"config_hash": shards_identity(cfg, 32), "source": str(source.resolve()),
                                                          "format": FORMAT}))
    # the config sections the shards depend on (not the whole config: a training setting is not the shards')
    write_text_if_changed(out / "config.json", json.dumps(sections_dict(cfg, "shards"), indent=2, sort_keys=True) + "\n")


def run_local(plan: Plan, out: Path, cfg: Any, workers: int, strict: bool, progress: Callable[[dict], None] | None = None) -> list[dict]:
    """Run the tasks in ``workers`` processes (fork: no re-import per task), or inline when workers <= 1."""
    args = [(t, plan.source, str(out), cfg.to_dict(), strict) for t in plan.tasks]
    parts: list[dict] = []
    if workers <= 1 or len(args) <= 1:
        for a in args:
            parts.append(run_task(*a))
            if progress:
                progress(parts[-1])
        return parts
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("fork")) as ex:
        futs = [ex.submit(run_task, *a) for a in args]
        for f in futs:  # in task order, so a --strict error names the first bad file deterministically
            parts.append(f.result())
            if progress:
                progress(parts[-1])
    return parts


def run_slurm(plan: Plan, out: Path, cfg: Any, strict: bool, executor: Any) -> list[dict]:
    """One SLURM array task per group of videos (``executor.map_array``, submitit); waits for all results.

    ``executor``: a submitit executor with its parameters set (:func:`physdiff.launch.slurm.array_executor`).
    """
    todo = [t for t in plan.tasks if task_done(out, t) is None]
    parts = {t.name: dict(task_done(out, t) or {}, reused=True) for t in plan.tasks if t not in todo}
    if todo:
        d = cfg.to_dict()
        jobs = executor.map_array(run_task, todo, [plan.source] * len(todo), [str(out)] * len(todo),
                                  [d] * len(todo), [strict] * len(todo))
        print(f"submitted SLURM array job {jobs[0].job_id.split('_')[0]} ({len(jobs)} tasks), logs in {out / '_slurm'}")
        for t, j in zip(todo, jobs):
            try:
                parts[t.name] = j.result()
            except Exception as e:  # submitit wraps the task's exception; surface the task and its message
                raise DataError(f"SLURM task {t.name} (job {j.job_id}) failed: {str(e).strip().splitlines()[-1]}") from e
    return [parts[t.name] for t in plan.tasks]


def finalize(plan: Plan, parts: list[dict], out: Path, cfg: Any) -> dict[str, Any]:
    """Merge part records into ``<split>/manifest.json`` and ``summary.json``; returns the summary."""
    summary: dict[str, Any] = {"format": FORMAT, "source": plan.source, "subset": cfg.shards.subset, "splits": {}}
    by_split: dict[str, list[dict]] = {s: [] for s in layout.SPLITS}
    for p in parts:
        by_split[p["split"]].append(p)
    total = Counter()
    for split, ps in by_split.items():
        shards = [s for p in ps for s in p["shards"]]
        skipped = [s for p in ps for s in p["skipped"]]
        written = sum(p["written"] for p in ps)
        annotated = plan.annotated.get(split, 0)
        if written + len(skipped) != annotated:
            raise RuntimeError(f"split {split}: written {written} + skipped {len(skipped)} != annotated {annotated}")
        manifest = {
            "format": FORMAT,
            "split": split,
            "num_samples": written,
            "num_shards": len(shards),
            "shards": shards,
            "annotated": annotated,
            "written": written,
            "skipped": skipped,
            "skip_counts": dict(Counter(skip_category(s["reason"]) for s in skipped)),
            # recordings sampled below audio.sample_rate: kept, but their clips hold nothing above half that rate
            "band_limited": [n for p in ps for n in p.get("band_limited", [])],
            "sample": {
                "sample_rate": cfg.audio.sample_rate,
                "num_samples": cfg.audio.num_samples,
                "num_frames": cfg.shards.num_frames,
                "frame_size": cfg.shards.frame_size,
                "modes_shape": [3, cfg.audio.n_fft // 2 + 1],
                "members": [sample.AUDIO_EXT, sample.MODES_EXT, sample.META_EXT, sample.FRAMES_EXT],
            },
            "source": plan.source,
            "config_hash": shards_identity(cfg),
            "config": sections_dict(cfg, "shards"),  # what the shards depend on (physdiff.identity)
        }
        d = out / split
        d.mkdir(parents=True, exist_ok=True)
        write_text_if_changed(d / "manifest.json", json.dumps(manifest, indent=1))
        summary["splits"][split] = {"annotated": annotated, "written": written, "skipped": len(skipped), "shards": len(shards),
                                    "bytes": sum(s["bytes"] for s in shards)}
        total.update(annotated=annotated, written=written, skipped=len(skipped))
        total.update(Counter({f"skip:{k}": v for k, v in manifest["skip_counts"].items()}))
    n_un = len(plan.unassigned)
    total.update(annotated=plan.annotated.get("unassigned", 0), skipped=n_un)
    summary.update(
        annotated=total["annotated"], written=total["written"], skipped=total["skipped"],
        skip_counts={k[5:]: v for k, v in total.items() if k.startswith("skip:")} | ({"no split": n_un} if n_un else {}),
        unassigned=[asdict(s) for s in plan.unassigned],
        skipped_videos=plan.skipped_videos,
        band_limited=[n for p in parts for n in p.get("band_limited", [])],
        tasks=len(parts), tasks_reused=sum(bool(p.get("reused")) for p in parts),
        config_hash=shards_identity(cfg),
    )
    if summary["written"] + summary["skipped"] != summary["annotated"]:
        raise RuntimeError(f"written {summary['written']} + skipped {summary['skipped']} != annotated {summary['annotated']}")
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    return summary


def build_shards(source: str | Path, out: str | Path, cfg: Any, *, workers: int | None = None, strict: bool = False,
                 overwrite: bool = False, slurm: Any = None, progress: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Build (or resume) the shards of ``source`` into ``out``; returns the summary (see ``finalize``).

    ``slurm``: a submitit executor to run the tasks as a SLURM job array (its folder: ``<out>/_slurm``).
    """
    source, out = Path(source), Path(out)
    plan = plan_build(source, cfg)
    if strict:
        for sv in plan.skipped_videos:
            raise StrictError(f"{sv['reason']} ({sv['file']})")
    check_output(out, cfg, source, overwrite)
    for split_dir in out.iterdir():  # temporary shards left by an interrupted run
        sweep_temps(split_dir)
    if slurm is not None:
        parts = run_slurm(plan, out, cfg, strict, slurm)
    else:
        parts = run_local(plan, out, cfg, workers if workers is not None else cfg.shards.workers, strict, progress)
    return finalize(plan, parts, out, cfg)


def format_summary(s: dict[str, Any]) -> str:
    lines = [f"written {s['written']} / skipped {s['skipped']} / annotated {s['annotated']}"
             f"  (tasks {s['tasks']}, reused {s['tasks_reused']})"]
    for split, d in s["splits"].items():
        lines.append(f"  {split:5s}: written {d['written']:6d}  skipped {d['skipped']:6d}  annotated {d['annotated']:6d}"
                     f"  shards {d['shards']:4d}  {d['bytes'] / 1e6:8.1f} MB")
    for reason, n in sorted(s["skip_counts"].items(), key=lambda kv: -kv[1]):
        lines.append(f"  skipped {n:6d}  {reason}")
    for sv in s["skipped_videos"]:
        lines.append(f"  video skipped: {sv['video_id']}: {sv['reason']} ({sv['file']})")
    for n in s.get("band_limited", []):
        lines.append(f"  warning: {n['file']}: {n['reason']} ({n['clips']} clips kept)")
    return "\n".join(lines)
