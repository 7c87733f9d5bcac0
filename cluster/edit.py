"""Sound editing on the interpretable physics priors: before/after audio and spectrograms, two ways.

    python cluster/edit.py --clip KEY --edit freq_scale=1.25 --edit decay_scale=0.5 --out edits/
    python cluster/edit.py --video clip.mp4 --onset 0.8 --edit freq_scale=0.8 --out edits/

A thin wrapper: the same as ``physdiff edit ...`` (``physdiff edit --help`` lists every flag).
"""

import sys

from physdiff.cli import main

if __name__ == "__main__":
    main(["edit", *sys.argv[1:]])
