"""The Greatest Hits folder layout (Owens et al., 2016): videos, annotations and the train/test split.

A source folder holds, per video id (a timestamp such as ``2015-02-16-16-49-06``: split file names
on ``_``, never on ``-``)::

    <id>_denoised.mp4        the video (<id>_denoised_thumb.mp4: a small version, preferred for frames)
    <id>_denoised.wav        the denoised recording (96 kHz in the real dataset)
    <id>_times.txt           one event per line: ``time material action reaction``
    train.txt / test.txt     (root) one video id per line

Everything here is pure parsing: no media is opened. A line that does not parse is kept as a
:class:`BadLine` (file, line number, reason) so the writer can account for it as a skipped event.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

from physdiff.data.labels import PAPER_MATERIALS, is_known_material
from physdiff.errors import DataError

SUFFIX_TIMES = "_times.txt"
SUFFIX_WAV = "_denoised.wav"
SUFFIX_VIDEO = "_denoised.mp4"
SUFFIX_THUMB = "_denoised_thumb.mp4"
# The splits of a shard folder. train.txt / test.txt (the dataset's own files) name train and test; the
# validation split is carved by video from the training videos when the shards are built
# (``shards.val_fraction``): every selection (best epoch, learning rate, checkpoint) is made on it, so the
# test split is touched only by the final report.
SPLITS = ("train", "val", "test")
SOURCE_SPLITS = ("train", "test")
VALIDATION = "val"


@dataclass(frozen=True)
class Event:
    """One annotated action: ``time material action reaction`` at ``line`` of ``<video_id>_times.txt``."""

    video_id: str
    line: int  # 1-based line number in the times file
    time: float  # seconds from the video start
    material: str
    action: str
    reaction: str


@dataclass(frozen=True)
class BadLine:
    """A times-file line that could not be parsed; it still counts as one annotated event."""

    video_id: str
    line: int
    text: str
    reason: str


@dataclass
class Video:
    """The files of one video id (paths may not exist: the writer checks and records skips)."""

    video_id: str
    root: Path

    @property
    def times(self) -> Path:
        return self.root / f"{self.video_id}{SUFFIX_TIMES}"

    @property
    def wav(self) -> Path:
        return self.root / f"{self.video_id}{SUFFIX_WAV}"

    @property
    def video(self) -> Path:
        return self.root / f"{self.video_id}{SUFFIX_VIDEO}"

    @property
    def thumb(self) -> Path:
        return self.root / f"{self.video_id}{SUFFIX_THUMB}"

    def frames_source(self) -> Path:
        """The paper's code extracts frames from the thumb video; fall back to the full one."""
        return self.thumb if self.thumb.exists() else self.video


def parse_times(path: str | Path, video_id: str | None = None) -> tuple[list[Event], list[BadLine]]:
    """Parse ``<id>_times.txt`` into events and bad lines (blank lines are ignored, not events).

    Raises DataError when the file itself cannot be read (missing, not UTF-8).
    """
    path = Path(path)
    if video_id is not None:
        vid = video_id
    elif path.name.endswith(SUFFIX_TIMES):
        vid = path.name[: -len(SUFFIX_TIMES)]
    else:
        vid = path.stem
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read annotations {path}: {e}") from e
    events: list[Event] = []
    bad: list[BadLine] = []
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 4:
            bad.append(BadLine(vid, n, line, f"expected 4 fields 'time material action reaction', got {len(parts)}"))
            continue
        try:
            t = float(parts[0])
        except ValueError:
            bad.append(BadLine(vid, n, line, f"time {parts[0]!r} is not a number"))
            continue
        if not math.isfinite(t) or t < 0:
            bad.append(BadLine(vid, n, line, f"time {parts[0]!r} is not a finite non-negative number"))
            continue
        events.append(Event(vid, n, t, parts[1], parts[2], parts[3]))
    return events, bad


def list_video_ids(source: str | Path) -> list[str]:
    """Every video id the folder mentions (times files, videos, wavs, split files), sorted."""
    source = Path(source)
    if not source.is_dir():
        raise DataError(f"source folder {source} does not exist or is not a folder")
    ids: set[str] = set()
    for p in source.iterdir():
        for suffix in (SUFFIX_TIMES, SUFFIX_THUMB, SUFFIX_VIDEO, SUFFIX_WAV):
            if p.name.endswith(suffix):
                ids.add(p.name[: -len(suffix)])
                break
    splits = read_split_files(source)
    if splits is not None:
        ids.update(splits)
    return sorted(ids)


def read_split_files(source: str | Path) -> dict[str, str] | None:
    """``{video_id: "train"|"test"}`` from root train.txt / test.txt, or None when neither exists.

    An id listed in both files is an error (the split would leak test clips into training).
    """
    source = Path(source)
    files = {s: source / f"{s}.txt" for s in SOURCE_SPLITS}
    if not any(f.exists() for f in files.values()):
        return None
    out: dict[str, str] = {}
    for split, f in files.items():
        if not f.exists():
            continue
        for line in f.read_text(encoding="utf-8").splitlines():
            vid = line.strip()
            if not vid:
                continue
            if vid in out and out[vid] != split:
                raise DataError(f"video {vid} is listed in both train.txt and test.txt under {source}")
            out[vid] = split
    return out


def hash_split(video_id: str, test_fraction: float = 0.2) -> str:
    """Deterministic split by video id (no split files): sha1 of the id, so it is stable across runs and machines."""
    h = int.from_bytes(hashlib.sha1(video_id.encode()).digest()[:8], "big") / 2**64
    return "test" if h < test_fraction else "train"


def validation_videos(train_ids: list[str], fraction: float) -> set[str]:
    """The training videos held out as the validation split: ``round(fraction * n)`` of them (at least one when
    there are two or more and ``fraction`` > 0), the ones whose salted sha1 is smallest, so the choice is
    stable across runs, machines and the order the videos are listed in."""
    if fraction <= 0 or len(train_ids) < 2:
        return set()
    k = min(len(train_ids) - 1, max(1, int(round(fraction * len(train_ids)))))
    ranked = sorted(train_ids, key=lambda v: hashlib.sha1(f"val/{v}".encode()).digest())
    return set(ranked[:k])


def subset_reason(event: Event, subset: str) -> str | None:
    """None when the event belongs to the subset; else why not (recorded as the skip reason).

    ``paper``: action hit, reaction static, one of the 10 paper materials (Su et al., Sec. 4).
    ``all``: every event with a known material.
    """
    if not is_known_material(event.material):
        return f"unknown material {event.material!r}"
    if subset == "all":
        return None
    if subset != "paper":
        raise DataError(f"unknown subset {subset!r}: expected 'paper' or 'all'")
    if event.action != "hit":
        return f"outside subset paper: action {event.action!r}"
    if event.reaction != "static":
        return f"outside subset paper: reaction {event.reaction!r}"
    if event.material not in PAPER_MATERIALS:
        return f"outside subset paper: material {event.material!r}"
    return None
