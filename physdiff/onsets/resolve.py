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
from physdiff.inference.media import parse_onsets, read_onsets
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


# One parser for typed onsets and one for times files, shared with generation (physdiff.inference.media).
parse_onset_list = parse_onsets
read_onset_file = read_onsets


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
