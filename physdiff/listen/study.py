"""A listening study folder: the paper's human evaluation (Table 2) over chosen generate runs.

The paper (Sec. 4, Table 2) showed Mechanical Turk workers one test video several times, each copy
with a different method's sound, and asked two forced-choice questions, plus a perceptual ablation
of the condition (video only vs video + label vs ours). A study folder fixes everything that
must not change while participants answer:

    <study>/study.json        the design: methods (name, variant, source run), items (test videos),
                              blocks (which methods a screen shows, which questions it asks), the seed
    <study>/media/v000/m0.mp4 each item's video with method 0's soundtrack, copied or hard-linked in at
                              creation; the names say nothing about the method (the server maps A, B, C
                              to files per participant)
    <study>/answers.sqlite    participants and answers (:mod:`physdiff.listen.store`)

    study = create_study("studies/s1", [("ours", run_a), ("video", run_b), ("video_label", run_c)], seed=0)
    study = load_study("studies/s1")
    plan = participant_plan(study, participant_seed=1234)   # the screens one participant sees, in order

Blocks. ``main`` shows every method and asks *matching* and *quality*. The ``ablation`` block shows
only the runs of the variants ``video``, ``video_label`` and ``ours`` and asks the same two questions;
it is a separate screen per item when the study has other methods too (a choice of a fourth method
says nothing about the order of these three), and is the main block itself when the study holds
exactly those three.
"""

from __future__ import annotations

import json
import re
import secrets
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import numpy as np

from physdiff.errors import DataError, PhysdiffError
from physdiff.fileio import atomic_output, atomic_write_json
from physdiff.listen.screen import Screen  # noqa: F401  (re-exported)
from physdiff.listen.media import (BROWSER_AUDIO_CODECS, BROWSER_VIDEO_CODECS, MEDIA_DIR, REFERENCE_RATE, mux_track,
                                   place_file, probe_mp4, recording_track, safe_media_path, sha256_file)
from physdiff.listen.runs import GenerateRun, read_generate_run

STUDY_FORMAT = "physdiff-listening-study/1"
STUDY_FILE = "study.json"
ANSWERS_FILE = "answers.sqlite"

# The paper's questions (Sec. 4, human evaluation), asked as forced choices among the shown videos.
QUESTIONS: dict[str, str] = {
    "matching": "In which video does the sound best match the content?",
    "quality": "Which video has the highest sound quality?",
}
ABLATION_VARIANTS = ("video", "video_label", "ours")  # the paper's perceptual ablation of the condition
REFERENCE_NAME = "recording"
REQUIRE_PLAY = ("end", "start", "none")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,39}$")
MAX_METHODS = 8  # more videos than this on one screen is no longer a comparison a listener can make


@dataclass(frozen=True)
class Method:
    name: str
    variant: str | None
    source: str  # the generate run folder, or "recording" for the reference
    kind: str = "generated"  # "generated" | "recording"


@dataclass(frozen=True)
class Item:
    id: str  # "v000": what the database and URLs use
    video_id: str  # the test video's id in the generate runs
    source_video: str | None
    duration: float
    media: dict[str, str]  # method name -> path below <study>/media
    sha256: dict[str, str]  # method name -> sha256 of that file (the study's audit trail)


@dataclass(frozen=True)
class Block:
    name: str  # "main" | "ablation"
    methods: tuple[str, ...]
    questions: tuple[str, ...]




@dataclass
class Study:
    root: Path
    study_id: str
    title: str
    seed: int
    created: str
    methods: list[Method]
    items: list[Item]
    blocks: list[Block]
    require_play: str = "end"
    ablation: dict = field(default_factory=dict)  # {"block": "ablation"|"main"|None, "methods": [...], "reason": str}
    skipped: dict[str, str] = field(default_factory=dict)  # video id -> why it is not an item

    @property
    def media_root(self) -> Path:
        return self.root / MEDIA_DIR

    @property
    def answers_path(self) -> Path:
        return self.root / ANSWERS_FILE

    def item(self, item_id: str) -> Item | None:
        return next((i for i in self.items if i.id == item_id), None)

    def block(self, name: str) -> Block | None:
        return next((b for b in self.blocks if b.name == name), None)

    def method(self, name: str) -> Method | None:
        return next((m for m in self.methods if m.name == name), None)

    def media_file(self, item_id: str, method: str) -> Path | None:
        """The study's own file for (item, method), or None (unknown, missing, or escaping the media folder)."""
        item = self.item(item_id)
        if item is None or method not in item.media:
            return None
        return safe_media_path(self.media_root, item.media[method])

    def to_json(self) -> dict:
        return {"format": STUDY_FORMAT, "study_id": self.study_id, "title": self.title, "seed": self.seed,
                "created": self.created, "require_play": self.require_play, "questions": QUESTIONS,
                "methods": [asdict(m) for m in self.methods], "blocks": [asdict(b) for b in self.blocks],
                "ablation": self.ablation, "items": [asdict(i) for i in self.items], "skipped": self.skipped}


# ----------------------------------------------------------------------------- the design


def participant_plan(study: Study, participant_seed: int) -> list[Screen]:
    """The screens of one participant: every (block, item) once, in a random order, each showing its
    block's methods in a random order. Seeded by (study seed, participant seed), so the plan can be
    recomputed; the store records it anyway, so the record (not this code) is what the report trusts."""
    rng = np.random.default_rng([int(study.seed) & 0xFFFFFFFF, int(participant_seed) & 0xFFFFFFFFFFFF])
    pairs = [(b, it) for b in study.blocks for it in study.items]
    out = []
    for pos, k in enumerate(rng.permutation(len(pairs)).tolist()):
        b, it = pairs[k]
        order = tuple(b.methods[j] for j in rng.permutation(len(b.methods)).tolist())
        out.append(Screen(position=pos, block=b.name, item=it.id, order=order))
    return out


def _parse_runs(runs: Sequence[tuple[str | None, str | Path]]) -> list[tuple[str, GenerateRun]]:
    out: list[tuple[str, GenerateRun]] = []
    for name, path in runs:
        run = read_generate_run(path)
        name = name or run.variant
        if not name:
            raise PhysdiffError(f"run {path} names no variant in its DONE.json: give it a name (--run NAME={path})")
        if not _NAME.match(name):
            raise PhysdiffError(f"method name {name!r} (for {path}): use letters, digits and _.+- (at most 40)")
        if name == REFERENCE_NAME:
            raise PhysdiffError(f"method name {name!r} is reserved for the real recording (--reference)")
        if any(n == name for n, _ in out):
            raise PhysdiffError(f"two runs are named {name!r}: name them apart (--run NAME=RUN)")
        out.append((name, run))
    return out


def _ablation(methods: list[Method], spec: str) -> tuple[tuple[str, ...] | None, str]:
    """The ablation's methods (or None) and why, from ``spec``: "auto", "none" or "NAME,NAME,NAME"."""
    names = [m.name for m in methods]
    if spec == "none":
        return None, "not asked (--ablation none)"
    if spec != "auto":
        chosen = tuple(s.strip() for s in spec.split(",") if s.strip())
        unknown = [c for c in chosen if c not in names]
        if unknown or len(chosen) < 2 or len(set(chosen)) != len(chosen):
            raise PhysdiffError(f"--ablation {spec!r}: name 2 or more distinct methods of this study ({', '.join(names)})")
        return chosen, "chosen with --ablation"
    by_variant: dict[str, list[str]] = {}
    for m in methods:
        if m.kind == "generated" and m.variant in ABLATION_VARIANTS:
            by_variant.setdefault(m.variant, []).append(m.name)
    missing = [v for v in ABLATION_VARIANTS if v not in by_variant]
    if missing:
        return None, f"no run of variant {', '.join(missing)}; the ablation compares {', '.join(ABLATION_VARIANTS)}"
    twice = {v: ns for v, ns in by_variant.items() if len(ns) > 1}
    if twice:
        raise PhysdiffError(f"several runs of variant {', '.join(twice)} ({twice}): say which form the ablation "
                            f"with --ablation NAME,NAME,NAME, or --ablation none")
    return tuple(by_variant[v][0] for v in ABLATION_VARIANTS), "runs of variants " + ", ".join(ABLATION_VARIANTS)


def create_study(study_dir: str | Path, runs: Sequence[tuple[str | None, str | Path]], *, reference: bool = False,
                 seed: int = 0, max_videos: int | None = None, ablation: str = "auto", title: str = "",
                 media_mode: str = "link", require_play: str = "end", log=None) -> Study:
    """Build a study folder from generate runs (``runs``: (method name or None for the run's variant, folder)).

    Items are the test videos present (and intact) in every run, sorted by id; ``max_videos`` keeps a
    seeded random subset. ``reference=True`` adds the real recording as a method (``recording``: the
    ground-truth wav, muxed into the source video, level-matched). The folder is assembled under a
    temporary name and published whole; an existing study is never overwritten.
    """
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    study_dir = Path(study_dir)
    if study_dir.exists():
        raise PhysdiffError(f"{study_dir} already exists: a study is never overwritten (its answers would no longer "
                            f"match its media); choose a new folder")
    if require_play not in REQUIRE_PLAY:
        raise PhysdiffError(f"--require-play must be one of {', '.join(REQUIRE_PLAY)}, got {require_play!r}")
    named = _parse_runs(runs)
    if len(named) + int(reference) < 2:
        raise PhysdiffError("a forced-choice study needs at least 2 methods: give 2 or more --run (or add --reference)")
    if len(named) + int(reference) > MAX_METHODS:
        raise PhysdiffError(f"{len(named) + int(reference)} methods on one screen is too many (at most {MAX_METHODS})")

    # Items: videos every run generated (intact). Everything else is recorded as skipped, with its reason.
    skipped: dict[str, str] = {}
    all_ids = sorted(set().union(*(r.videos.keys() | r.skipped.keys() for _, r in named)))
    common = []
    for vid in all_ids:
        why = [f"{n}: {r.skipped[vid]}" if vid in r.skipped else f"{n}: not generated" for n, r in named
               if vid not in r.videos]
        if why:
            skipped[vid] = "; ".join(why)
            continue
        sources = {str(r.videos[vid].source_video) for _, r in named}
        if len(sources) > 1:
            skipped[vid] = f"the runs generated it from different source videos: {sorted(sources)}"
            continue
        common.append(vid)
    if reference:
        for vid in list(common):
            v = named[0][1].videos[vid]
            if not (v.source_video and v.source_video.is_file()):
                skipped[vid] = f"source video {v.source_video} not found (needed for --reference)"
            elif not (v.ground_truth and v.ground_truth.is_file()):
                skipped[vid] = f"no recording (generation.json ground_truth {v.ground_truth}) for --reference"
            else:
                continue
            common.remove(vid)
    if not common:
        counts = ", ".join(f"{n} ({len(r.videos)} videos)" for n, r in named)
        first = next(iter(skipped.items()), None)
        raise DataError(f"no test video is common to every run ({counts})"
                        + (f"; e.g. {first[0]}: {first[1]}" if first else ""))
    if max_videos is not None and 0 < max_videos < len(common):
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x5EED])
        keep = set(rng.choice(len(common), size=max_videos, replace=False).tolist())
        for k, vid in enumerate(list(common)):
            if k not in keep:
                skipped[vid] = f"not in the {max_videos} videos drawn with --max-videos (seed {seed})"
        common = [vid for k, vid in enumerate(common) if k in keep]

    methods = [Method(n, r.variant, str(r.path.resolve())) for n, r in named]
    if reference:
        methods.append(Method(REFERENCE_NAME, None, "recording", kind="recording"))
    abl, abl_reason = _ablation(methods, ablation)
    questions = tuple(QUESTIONS)
    blocks = [Block("main", tuple(m.name for m in methods), questions)]
    abl_block = None
    if abl is not None:
        if set(abl) == set(blocks[0].methods):
            abl_block = "main"  # the study *is* the ablation: no second screen per item
        else:
            blocks.append(Block("ablation", abl, questions))
            abl_block = "ablation"

    study_dir.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(study_dir) as tmp:
        tmp.mkdir()
        items = []
        modes: set[str] = set()
        for k, vid in enumerate(common):
            iid = f"v{k:03d}"
            media, hashes = {}, {}
            duration = None
            for j, m in enumerate(methods):
                rel = f"{iid}/m{j}.mp4"
                dst = tmp / MEDIA_DIR / rel
                if m.kind == "recording":
                    v = named[0][1].videos[vid]
                    dur = duration if duration is not None else probe_mp4(v.mp4).duration
                    mux_track(v.source_video, recording_track(v.ground_truth, dur), REFERENCE_RATE, dst)
                    modes.add("muxed")
                else:
                    modes.add(place_file(dict(named)[m.name].videos[vid].mp4, dst, media_mode))
                info = probe_mp4(dst)
                if info.video_codec not in BROWSER_VIDEO_CODECS or info.audio_codec not in BROWSER_AUDIO_CODECS:
                    log(f"[listen] warning: {dst.name} of {vid} ({m.name}) is {info.video_codec}/{info.audio_codec}; "
                        f"browsers play h264/aac reliably")
                duration = info.duration if duration is None else duration
                media[m.name], hashes[m.name] = rel, sha256_file(dst)
            src = named[0][1].videos[vid].source_video
            items.append(Item(iid, vid, str(src) if src else None, round(float(duration or 0.0), 4), media, hashes))
        study = Study(root=study_dir, study_id=secrets.token_hex(6), title=title or f"Listening study ({study_dir.name})",
                      seed=int(seed), created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                      methods=methods, items=items, blocks=blocks, require_play=require_play,
                      ablation={"block": abl_block, "methods": list(abl or ()), "reason": abl_reason}, skipped=skipped)
        atomic_write_json(tmp / STUDY_FILE, study.to_json())
        from physdiff.listen.store import AnswerStore

        AnswerStore.create(tmp / ANSWERS_FILE, study.study_id).close()
    log(f"[listen] study {study.study_id}: {len(items)} videos x {len(methods)} methods "
        f"({', '.join(m.name for m in methods)}), blocks {', '.join(b.name for b in blocks)}; media {'/'.join(sorted(modes))}"
        + (f"; {len(skipped)} videos skipped (see study.json)" if skipped else ""))
    return study


def load_study(study_dir: str | Path) -> Study:
    """A study folder made by :func:`create_study`; DataError naming the file when it is not one."""
    root = Path(study_dir)
    path = root / STUDY_FILE
    if not path.is_file():
        raise DataError(f"{root} is not a listening study (no {STUDY_FILE}): make one with `listen create`")
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        if d.get("format") != STUDY_FORMAT:
            raise DataError(f"{path} has format {d.get('format')!r}, expected {STUDY_FORMAT!r}")
        methods = [Method(**m) for m in d["methods"]]
        items = [Item(**i) for i in d["items"]]
        blocks = [Block(b["name"], tuple(b["methods"]), tuple(b["questions"])) for b in d["blocks"]]
        study = Study(root=root, study_id=d["study_id"], title=d["title"], seed=int(d["seed"]), created=d["created"],
                      methods=methods, items=items, blocks=blocks, require_play=d.get("require_play", "end"),
                      ablation=d.get("ablation", {}), skipped=d.get("skipped", {}))
    except DataError:
        raise
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise DataError(f"unreadable study file {path}: {e!r}") from None
    names = {m.name for m in study.methods}
    for b in study.blocks:
        if not set(b.methods) <= names or not set(b.questions) <= set(QUESTIONS):
            raise DataError(f"{path}: block {b.name!r} names unknown methods or questions")
    return study


def check_media(study: Study) -> None:
    """Every (item, method) file is present inside the study's media folder (serve checks this at start)."""
    for it in study.items:
        for b in study.blocks:
            for m in b.methods:
                if study.media_file(it.id, m) is None:
                    raise DataError(f"{study.media_root / it.media.get(m, '?')}: media of {it.video_id} ({m}) is "
                                    f"missing or not a regular file inside {study.media_root}")
