"""Generate the synthetic physics world: impact videos + sounds in the Greatest Hits layout, with ground truth.

    python shards/synth.py --out data/world/tiny --preset tiny --seed 0            # 40 videos x 12 hits, 64 px
    python shards/synth.py --out DIR --videos 20 --hits-per-video 16 --seed 0 --size 224 --workers 2

A thin wrapper: the same as ``physdiff synth ...`` (``physdiff synth --help`` lists every flag).
"""

import sys

from physdiff.cli import main

if __name__ == "__main__":
    main(["synth", *sys.argv[1:]])
