"""Greatest Hits layout -> WebDataset shards with physics (sample format in shards/README.md).

    python shards/build.py --source data/world/debug --out data/shards/debug --workers 2 --preset debug
    python shards/build.py --source /datasets/vis-data --out data/shards/gh --subset paper --workers 16
    python shards/build.py --source DIR --out DIR --slurm --partition debug --time 60

A thin wrapper: the same as ``physdiff shards ...`` (``physdiff shards --help`` lists every flag).
"""

import sys

from physdiff.cli import main

if __name__ == "__main__":
    main(["shards", *sys.argv[1:]])
