"""Strike onsets from silent video (issue 17, section 1): ``detect_onsets(video) -> [Onset]``.

    from physdiff.onsets import detect_onsets, resolve_onsets
    onsets = detect_onsets("clip.mp4")                        # [Onset(time_s, frame, confidence), ...]
    times, source, conf = resolve_onsets("clip.mp4", "auto")  # what `generate --onsets auto` calls
"""

from physdiff.onsets.detect import Candidate, DetectorSettings, Onset, detect_onsets, find_strikes
from physdiff.onsets.track import MotionTrack, decode_video, motion_track

__all__ = ["Candidate", "DetectorSettings", "MotionTrack", "Onset", "decode_video", "detect_onsets", "find_strikes",
           "motion_track"]
