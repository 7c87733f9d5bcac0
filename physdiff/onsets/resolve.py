"""Where generation's onsets come from: typed by the user, read from a times file, or found in the video.

``generate --onsets auto`` runs the detector; explicit ``--onsets 0.5,1.2`` or ``--times FILE`` still
override it. Whatever the source, :class:`ResolvedOnsets` records it, so ``generation.json`` can say
which onsets were used and, for detected ones, with what confidence.

    r = resolve_onsets("clip.mp4", "auto")               # detector
    r = resolve_onsets("clip.mp4", "0.5,1.2")            # typed
    r = resolve_onsets("clip.mp4", times="clip_times.txt")
    times, source, confidences = r                       # unpacks as a (times, source, confidences) triple
    summary["onsets"] = r.to_json()                      # for generation.json
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from physdiff.errors import DataError
from physdiff.onsets.detect import DetectorSettings, Onset, detect_onsets

AUTO = "auto"


@dataclass
class ResolvedOnsets:
    """The onsets generation will use: times (s), where they came from, and per-onset confidence (None when given)."""

    times: list[float]
    source: str  # "detected" | "onsets" (typed) | "times" (a file)
    confidences: list[float | None]
    detected: list[Onset] = field(default_factory=list)
    settings: DetectorSettings | None = None
    origin: str | None = None  # the times file, or the typed text

    def __iter__(self) -> Iterator[Any]:  # times, source, confidences = resolve_onsets(...)
        return iter((self.times, self.source, self.confidences))

    def to_json(self) -> dict[str, Any]:
        """What ``generation.json`` records under ``"onsets"``."""
        out: dict[str, Any] = {"source": self.source, "times": [round(t, 6) for t in self.times],
                               "confidences": [None if c is None else round(c, 4) for c in self.confidences]}
        if self.origin is not None:
            out["origin"] = self.origin
        if self.source == "detected":
            out["detector"] = {"method": "motion-cusp", "settings": asdict(self.settings) if self.settings else None,
                               "onsets": [o.to_dict() for o in self.detected]}
        return out


def parse_onset_list(text: str) -> list[float]:
    """``"0.5,1.2 2.0"`` -> [0.5, 1.2, 2.0] (commas or spaces). DataError on anything that is not seconds."""
    toks = [t for t in text.replace(",", " ").split() if t]
    try:
        out = [float(t) for t in toks]
    except ValueError:
        raise DataError(f"--onsets must be 'auto' or numbers of seconds separated by commas, got {text!r}") from None
    if not out:
        raise DataError(f"--onsets is empty: give 'auto' or times in seconds such as 0.5,1.2")
    return out


def read_onset_file(path: str | Path) -> list[float]:
    """Onset times from a file: Greatest Hits ``time material action reaction`` lines, or one time per line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read onsets {path}: {e}") from None
    out = []
    for n, line in enumerate(lines, 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        tok = s.split()[0].rstrip(",")
        try:
            out.append(float(tok))
        except ValueError:
            raise DataError(f"{path}:{n}: onset {tok!r} is not a number of seconds") from None
    if not out:
        raise DataError(f"no onsets in {path}")
    return out


def resolve_onsets(video: str | Path, onsets: str | Sequence[float] | None = AUTO, *, times: str | Path | None = None,
                   settings: DetectorSettings | None = None) -> ResolvedOnsets:
    """The onsets for ``video``: ``times`` (a file) first, then explicit ``onsets``, else the detector.

    ``onsets`` is ``"auto"`` / None (detect), a string of seconds (``"0.5,1.2"``) or a sequence of
    floats. Detection raises DataError naming the file when the video is unreadable or shows no strike
    (so nothing is generated for it).
    """
    if times is not None:
        ts = read_onset_file(times)
        return ResolvedOnsets(ts, "times", [None] * len(ts), origin=str(times))
    if isinstance(onsets, str) and onsets.strip().lower() != AUTO:
        ts = parse_onset_list(onsets)
        return ResolvedOnsets(ts, "onsets", [None] * len(ts), origin=onsets)
    if onsets is not None and not isinstance(onsets, str):
        ts = [float(t) for t in onsets]
        if not ts:
            raise DataError(f"no onsets given for {video}")
        return ResolvedOnsets(ts, "onsets", [None] * len(ts))
    s = settings or DetectorSettings()
    found = detect_onsets(video, s)  # DataError: unreadable, or no strike
    return ResolvedOnsets([o.time_s for o in found], "detected", [o.confidence for o in found], found, s)
