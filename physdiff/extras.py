"""Optional extras: import what only an extra installs, or stop with one line that says how to install it.

The core install (``pip install physdiff``) runs the main job: the whole pipeline on one machine,
tracked in the embedded SQLite MLflow store. What not everyone needs is an extra (``pyproject.toml``):

==========  ======================  =====================================================
extra       installs                needed by
==========  ======================  =====================================================
cluster     submitit                ``physdiff launch`` / ``physdiff shards --slurm`` on SLURM
sweeps      ray[tune]               ``physdiff sweep`` (Ray Tune studies)
server      mlflow (full)           ``mlflow ui``, ``physdiff mlflow start`` (the tracking server)
faiss       faiss-cpu               ``eval.retrieval_backend=faiss``
dev         all of the above +      the test suite
            pytest, playwright
==========  ======================  =====================================================

Usage, at the few places that import an extra's package::

    from physdiff.extras import require

    submitit = require("submitit", extra="cluster", feature="physdiff launch on SLURM")
    # without it: physdiff.extras.MissingExtra, printed by run_cli as
    # error: physdiff launch on SLURM needs the 'cluster' extra: pip install 'physdiff[cluster]'
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from types import ModuleType

from physdiff.errors import PhysdiffError

EXTRAS: dict[str, str] = {
    "cluster": "submitit",
    "sweeps": "ray[tune]",
    "server": "mlflow",
    "faiss": "faiss-cpu",
}


class MissingExtra(PhysdiffError, ImportError):
    """An optional extra is not installed; the message names the feature and the install command.

    It is an ``ImportError`` too, so code that already treats a missing optional package as
    "not available" (``except ImportError``) keeps working.
    """

    def __init__(self, feature: str, extra: str, detail: str = "") -> None:
        self.feature, self.extra = feature, extra
        msg = f"{feature} needs the '{extra}' extra: {install_command(extra)}"
        super().__init__(msg + (f" ({detail})" if detail else ""))


def install_command(extra: str) -> str:
    """``pip install 'physdiff[<extra>]'`` (quoted: shells expand the brackets)."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}; extras: {', '.join(EXTRAS)}")
    return f"pip install 'physdiff[{extra}]'"


def require(module: str, *, extra: str, feature: str) -> ModuleType:
    """Import ``module`` (e.g. ``"submitit"``, ``"ray.tune"``) or raise :class:`MissingExtra` for ``extra``.

    Any ``ImportError`` while importing counts as the extra missing, also one raised inside the package
    (a half-installed extra: ``mlflow.server`` without Flask); the failing import is kept in the message,
    so the line still says what broke.
    """
    install_command(extra)  # a typo in the extra's name is our bug: fail loudly, not with a wrong command
    try:
        return importlib.import_module(module)
    except ImportError as e:
        missing = getattr(e, "name", None) or module
        detail = "" if missing == module.split(".")[0] or missing == module else f"import {module} failed: {e}"
        raise MissingExtra(feature, extra, detail) from e


def require_distribution(dist: str, *, extra: str, feature: str) -> None:
    """Raise :class:`MissingExtra` unless the distribution ``dist`` is installed (nothing is imported).

    For an extra whose import name another package also provides: the core's ``mlflow-skinny`` installs
    the ``mlflow`` module but not the server (Flask, gunicorn, the UI), which only the ``mlflow``
    distribution brings.
    """
    install_command(extra)
    if not has_distribution(dist):
        raise MissingExtra(feature, extra, f"the {dist!r} package is not installed")


def has_distribution(dist: str) -> bool:
    """True when the distribution (what ``pip install NAME`` installs) is present in this environment."""
    try:
        importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def available(module: str) -> bool:
    """True when ``module`` can be found (nothing is imported): for "use it if installed" choices."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module with __spec__ None
        return False
