"""Run any stage, or the whole pipeline, on one GPU, many GPUs, many nodes, or CPU processes.

    python cluster/launch.py --stage all --local --preset tiny             # the whole pipeline, this process
    python cluster/launch.py --stage prior --gpus 8                       # SLURM via submitit, 1 node x 8 GPUs
    python cluster/launch.py --stage prior --gpus 8 --nodes 4 --partition gpu --time 1440
    python cluster/launch.py --stage prior --local --preset debug          # this process, one GPU or the CPU
    python cluster/launch.py --stage prior --cpu --procs 2 --preset debug  # 2 local gloo processes (torchrun)
    python cluster/launch.py --stage all --gpus 8 --dry-run                # the SLURM chain; nothing submitted

A thin wrapper: the same as ``physdiff launch ...`` (``physdiff launch --help`` lists every flag).
"""

import sys

from physdiff.cli import main

if __name__ == "__main__":
    main(["launch", *sys.argv[1:]])
