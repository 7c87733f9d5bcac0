"""Generate impact sounds for one silent video: frames -> nu -> retrieved mu -> diffusion -> WAVs + MP4.

    python cluster/generate.py --video clip.mp4 --onsets 0.5,1.2 --out out/
    python cluster/generate.py --video clip.mp4 --times clip_times.txt --run-from data/runs/diffusion-ours-HASH --out out/

A thin wrapper: the same as ``physdiff generate ...`` (``physdiff generate --help`` lists every flag).
"""

import sys

from physdiff.cli import main

if __name__ == "__main__":
    main(["generate", *sys.argv[1:]])
