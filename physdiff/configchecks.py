"""Range checks shared by the config sections' ``validate()`` methods (one line per bad value).

``physdiff.configlib.apply_overrides`` calls every section's ``validate()`` whenever a value is set (presets,
``key=value`` tokens, flags, a re-read ``config.json``), so a bad value is refused where it was typed,
not deep inside a run (a ``ZeroDivisionError`` at step 1, gradient ascent with a negative learning rate)::

    def validate(self) -> None:
        at_least("train", self, 1, "eval_every", "checkpoint_every", "log_every")
        positive_finite("train", self, "lr")
        rate("prior", self, "dropout")

Every check names the key as it is typed on the command line (``train.lr``) and the value it got.
"""

from __future__ import annotations

import math
from typing import Any

from physdiff.configlib import ConfigError


def _num(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def at_least(section: str, obj: Any, lo: int, *names: str, why: str = "") -> None:
    """Each integer field ``>= lo`` (e.g. every ``*_every`` >= 1: it is a divisor)."""
    for name in names:
        v = getattr(obj, name)
        if not v >= lo:
            raise ConfigError(f"{section}.{name} must be >= {lo}{why}, got {v}")


def positive_finite(section: str, obj: Any, *names: str) -> None:
    """Each float field finite and > 0 (a learning rate, a time)."""
    for name in names:
        v = _num(getattr(obj, name))
        if not (math.isfinite(v) and v > 0):
            raise ConfigError(f"{section}.{name} must be a finite number > 0, got {getattr(obj, name)}")


def nonnegative_finite(section: str, obj: Any, *names: str, why: str = "") -> None:
    """Each float field finite and >= 0 (weight decay, a clipping norm; 0 often means "off" or "inherit")."""
    for name in names:
        v = _num(getattr(obj, name))
        if not (math.isfinite(v) and v >= 0):
            raise ConfigError(f"{section}.{name} must be a finite number >= 0{why}, got {getattr(obj, name)}")


def finite(section: str, obj: Any, *names: str) -> None:
    for name in names:
        if not math.isfinite(_num(getattr(obj, name))):
            raise ConfigError(f"{section}.{name} must be a finite number, got {getattr(obj, name)}")


def rate(section: str, obj: Any, *names: str, lo: float = 0.0, hi: float = 1.0, hi_open: bool = True) -> None:
    """Each field in ``[lo, hi)`` (``[lo, hi]`` with ``hi_open=False``): dropout, EMA decay, probabilities."""
    for name in names:
        v = _num(getattr(obj, name))
        ok = lo <= v < hi if hi_open else lo <= v <= hi
        if not ok:
            bracket = ")" if hi_open else "]"
            raise ConfigError(f"{section}.{name} must be in [{lo:g}, {hi:g}{bracket}, got {getattr(obj, name)}")


def stage_overrides(section: str, obj: Any) -> None:
    """A stage section's ``epochs`` / ``lr`` / ``eval_every`` (0 = the ``train`` section's value; negative is an error)."""
    if hasattr(obj, "epochs"):
        at_least(section, obj, 0, "epochs", why=" (0 = train.epochs)")
    if hasattr(obj, "lr"):
        nonnegative_finite(section, obj, "lr", why=" (0 = train.lr)")
    if hasattr(obj, "eval_every"):
        at_least(section, obj, 0, "eval_every", why=" (0 = train.eval_every)")
