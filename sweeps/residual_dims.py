"""Fig. 5a: how the number of residual parameters M changes reconstruction quality, as a Ray Tune sweep.

    python sweeps/residual_dims.py --preset tiny --dims 0,10,25,50,100 --lr 5e-4,2e-3 --max-concurrent 2
    python sweeps/residual_dims.py --resume --name NAME

A thin wrapper: the same as ``physdiff sweep residual-dims ...`` (its ``--help`` lists every flag).
"""

import sys

from physdiff.cli import main

if __name__ == "__main__":
    main(["sweep", "residual-dims", *sys.argv[1:]])
