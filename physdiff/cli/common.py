"""The flag vocabulary every ``physdiff`` command shares (the same name means the same thing everywhere).

- config: ``--preset``, ``--config FILE``, ``--print-config`` and trailing ``section.key=value`` tokens;
- data and tracking: ``--data-root`` (``paths.data_root``) and ``--tracking-uri`` (``tracking.tracking_uri``);
- SLURM: ``--partition``, ``--time`` (minutes), ``--cpus-per-task`` (and ``--nodes`` / ``--gpus`` where a
  command trains);
- ``--seed``: the seed of what the command makes (its help names the config key); ``--no-progress``.
"""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from physdiff.config import ConfigError, add_config_args, config_from_args  # noqa: F401  (re-exported for the commands)
from physdiff.errors import PhysdiffError


class UsageError(PhysdiffError):
    """A command line argparse cannot read (unknown flag, invalid choice, missing argument)."""


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one ``error:`` line (physdiff.errors.run_cli), not the usage block + exit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def parser(prog: str, doc: str | None, **kw: Any) -> argparse.ArgumentParser:
    """An argparse parser whose description is the module docstring (its usage examples stay verbatim)."""
    kw.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
    return OneLineParser(prog=prog, description=doc, **kw)


def check_override_tokens(tokens: list[str]) -> None:
    """Unknown or ill-typed ``key=value`` tokens as one-line errors, before anything is loaded.

    Only names and types: the values are applied (and range-checked) later on the config they belong to
    (e.g. a loaded run's), where cross-field rules are known.
    """
    from physdiff.config import Config
    from physdiff.configlib import _set_path, parse_override_tokens

    probe = Config()
    for k, v in parse_override_tokens(tokens):
        _set_path(probe, k, v, Config)


def add_data_args(p: argparse.ArgumentParser, tracking: bool = True) -> None:
    p.add_argument("--data-root", default=None, metavar="DIR",
                   help="the data folder for worlds, shards, runs and the MLflow store (paths.data_root; "
                        "default: $PHYSDIFF_DATA or ./data)")
    if tracking:
        p.add_argument("--tracking-uri", default=None, metavar="URI",
                       help="MLflow tracking URI (tracking.tracking_uri; default: $MLFLOW_TRACKING_URI or SQLite "
                            "in the data folder)")


def add_slurm_args(p: argparse.ArgumentParser, *, training: bool) -> None:
    g = p.add_argument_group("SLURM")
    g.add_argument("--partition", "--slurm-partition", dest="partition", default=None, help="SLURM partition")
    g.add_argument("--time", "--slurm-time", dest="time", type=int, default=24 * 60 if training else 60,
                   metavar="MIN", help="time limit per job in minutes (default: %(default)s)")
    g.add_argument("--cpus-per-task", "--slurm-cpus", dest="cpus_per_task", type=int, default=None, metavar="N",
                   help="CPUs per SLURM task (default: loader workers + 1 for training, the worker count otherwise)")
    if training:
        g.add_argument("--nodes", type=int, default=1, help="nodes per training job (default: 1)")
        g.add_argument("--gpus", type=int, default=1, help="GPUs (= tasks) per node (default: 1)")


def add_progress_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress bars (train.progress=false)")


def data_overrides(args: Any) -> dict[str, Any]:
    """The config values of the shared flags (``None`` = not given)."""
    out: dict[str, Any] = {"paths.data_root": getattr(args, "data_root", None),
                           "tracking.tracking_uri": getattr(args, "tracking_uri", None)}
    if getattr(args, "no_progress", False):
        out["train.progress"] = False
    return out
