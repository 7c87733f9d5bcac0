"""Figures of the synthetic world: a contact sheet of frames and a spectrogram sheet per material.

    python shards/world_sheets.py --out docs/img            # world_frames.png, world_spectrograms.png, world_objects.png
    python shards/world_sheets.py --out docs/img --table    # also the calibration table

A thin wrapper: the same as ``physdiff sheets ...`` (``physdiff sheets --help`` lists every flag).
"""

import sys

from physdiff.cli import main

if __name__ == "__main__":
    main(["sheets", *sys.argv[1:]])
