"""The ``physdiff`` command: one entry point, one subcommand per job (``python -m physdiff`` is the same).

    physdiff synth --preset tiny --out data/world/demo          # a synthetic world (Greatest Hits layout)
    physdiff shards --source DIR --out SHARDS --preset tiny     # videos -> WebDataset shards with physics
    physdiff launch --stage all --local --preset tiny           # any stage, or the whole pipeline (SLURM too)
    physdiff generate --video clip.mp4 --onsets 0.5,1.2 --out out/
    physdiff edit --clip KEY --edit freq_scale=1.25 --out edits/
    physdiff sweep residual-dims --preset tiny                  # the paper's Fig. 5a on Ray Tune
    physdiff mlflow start                                       # a tracking server (127.0.0.1 by default)
    physdiff sheets --out docs/img                              # contact / spectrogram sheets of a world
    physdiff sbatch train > train.sbatch                        # the sbatch templates shipped with the package
    physdiff listen create --study S --run ours=RUN ...         # the paper's listening study (Table 2)

``physdiff <command> --help`` lists each command's flags. The scripts in ``shards/``, ``cluster/`` and
``sweeps/`` are the same commands. Errors are one line on stderr with exit code 2; set
``PHYSDIFF_DEBUG=1`` (or pass ``--traceback`` first: ``physdiff --traceback launch ...``) to see the full trace.
"""

from __future__ import annotations

import importlib
import sys

# command -> (module:function taking argv, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("physdiff.cli.synth:main", "generate a synthetic world in the Greatest Hits layout"),
    "shards": ("physdiff.cli.shards:main", "build WebDataset shards with physics from a Greatest Hits folder"),
    "launch": ("physdiff.launch.cli:main", "run a stage or the whole pipeline: here, CPU processes, or SLURM"),
    "generate": ("physdiff.cli.generate:main", "generate impact sounds for a silent video"),
    "edit": ("physdiff.cli.edit:main", "edit a clip's physics priors and hear the result"),
    "sweep": ("physdiff.cli.sweep:main", "hyper-parameter studies on Ray Tune (Fig. 5a)"),
    "mlflow": ("physdiff.launch.mlflow_server:main", "start, inspect or stop an MLflow tracking server"),
    "sheets": ("physdiff.cli.sheets:main", "draw contact and spectrogram sheets of a world"),
    "sbatch": ("physdiff.cli.sbatch:main", "print an sbatch template (train, train_cpu, ray_sweep)"),
    "listen": ("physdiff.listen.cli:main", "the paper's listening study: create, serve, invite, report"),
}


def _usage() -> str:
    width = max(len(c) for c in COMMANDS)
    lines = [__doc__.strip(), "", "commands:"]
    lines += [f"  {c:<{width}}  {h}" for c, (_, h) in COMMANDS.items()]
    return "\n".join(lines)


def run(command: str, argv: list[str]) -> int:
    """Run one subcommand in this process (no error wrapping: library and test use)."""
    if command not in COMMANDS:
        from physdiff.errors import PhysdiffError

        raise PhysdiffError(f"unknown command {command!r}; commands: {', '.join(COMMANDS)}")
    module, _, fn = COMMANDS[command][0].partition(":")
    return int(getattr(importlib.import_module(module), fn)(argv) or 0)


def main(argv: list[str] | None = None) -> None:
    """The console entry point: ``physdiff <command> [args]`` with one-line errors (physdiff.errors.run_cli)."""
    import os

    from physdiff.errors import run_cli

    argv = list(sys.argv[1:] if argv is None else argv)
    # --traceback first (``physdiff --traceback launch ...``), or right after the command, which is where the
    # repo scripts put it (``python cluster/launch.py --traceback ...`` = ``physdiff launch --traceback ...``)
    for pos in (0, 1):
        if len(argv) > pos and argv[pos] == "--traceback":
            os.environ["PHYSDIFF_DEBUG"] = "1"
            del argv[pos]
            break
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        raise SystemExit(0 if argv else 2)
    command, rest = argv[0], argv[1:]
    run_cli(lambda: run(command, rest))
