"""The launcher: one entry for every stage and the whole pipeline, here, on CPU processes or on SLURM.

``cli`` (flags, modes, one stage), ``pipeline`` (``--stage all`` as data), ``slurm`` (the one submitit
helper and the training job), ``checks`` (the dry run), ``worker`` (the per-rank process torchrun and
srun start), ``mlflow_server`` (a tracking server for many nodes). ``physdiff launch`` and
``python cluster/launch.py`` are its command line; ``launch(argv)`` its library entry.
"""

from physdiff.launch.cli import Launch, launch

__all__ = ["Launch", "launch"]
