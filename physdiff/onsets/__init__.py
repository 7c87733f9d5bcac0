"""Strike onsets from silent video: ``detect_onsets(video) -> [Onset]``.

    from physdiff.onsets import detect_onsets, resolve_onsets
    onsets = detect_onsets("clip.mp4")                        # [Onset(time_s, frame, confidence), ...]
    times, source, conf = resolve_onsets("clip.mp4", "auto")  # what `generate --onsets auto` calls
    python -m physdiff.onsets clip.mp4 --out clip_onsets.txt  # print them; write a file --times accepts

Modules: :mod:`~physdiff.onsets.track` (video -> the moving object's trajectory),
:mod:`~physdiff.onsets.detect` (trajectory -> contacts with sub-frame times and confidences),
:mod:`~physdiff.onsets.resolve` (auto / typed / file onsets for generation),
:mod:`~physdiff.onsets.evaluate` (scores against a generated world's ground truth; bench/onsets.py).
"""

from physdiff.onsets.detect import Candidate, DetectorSettings, Onset, detect_onsets, find_strikes
from physdiff.onsets.resolve import ResolvedOnsets, resolve_onsets
from physdiff.onsets.track import MotionTrack, decode_video, motion_track

__all__ = ["Candidate", "DetectorSettings", "MotionTrack", "Onset", "ResolvedOnsets", "decode_video", "detect_onsets",
           "find_strikes", "motion_track", "resolve_onsets"]
