"""Find the strikes in a silent video and print them (time, frame, confidence); optionally write a times file.

    python -m physdiff.onsets clip.mp4                         # table on stdout
    python -m physdiff.onsets clip.mp4 --out clip_onsets.txt   # one time per line: cluster/generate.py --times reads it
    python -m physdiff.onsets clip.mp4 --min-confidence 0.3 --direction up --json

A video with no detectable strike, or an unreadable one, is one ``error: ...`` line naming the file (exit 2).
"""

from __future__ import annotations

import argparse
import json
import sys

from physdiff.errors import run_cli


def main(argv: list[str] | None = None) -> int:
    from physdiff.fileio import atomic_write_text
    from physdiff.onsets.detect import DetectorSettings, detect_onsets

    ap = argparse.ArgumentParser(prog="python -m physdiff.onsets", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("video")
    ap.add_argument("--out", default=None, help="write the onset times here, one per line (seconds)")
    ap.add_argument("--min-confidence", type=float, default=None)
    ap.add_argument("--direction", choices=("down", "up", "left", "right"), default=None,
                    help="the way the stick travels toward the surface in the picture (default down)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = ap.parse_args(argv)
    s = DetectorSettings()
    if args.min_confidence is not None:
        s.min_confidence = args.min_confidence
    if args.direction:
        s.direction = args.direction
    onsets = detect_onsets(args.video, s)
    if args.json:
        print(json.dumps([o.to_dict() for o in onsets], indent=1))
    else:
        print(f"{len(onsets)} strikes in {args.video}")
        print("   time_s  frame  confidence")
        for o in onsets:
            print(f"{o.time_s:9.4f} {o.frame:6d} {o.confidence:11.3f}")
    if args.out:
        atomic_write_text(args.out, "".join(f"{o.time_s:.6f}\n" for o in onsets))
    return 0


if __name__ == "__main__":
    run_cli(lambda: main(sys.argv[1:]))
