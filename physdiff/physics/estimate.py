"""``estimate_modes``: audio -> per-bin modes (f, p, lambda), by a named estimator.

Estimators are registered by name (``list_estimators()``):
- ``"paper"``: the paper's rule (Sec. 3.1), vectorised; see :mod:`physdiff.physics.paper_rule`.
- ``"official"``: the official code's rule exactly (its FFT grid, +-10.76 Hz window, 0 dB gate, first
  maximum on ties), so priors are extracted as the released model's were; see
  :mod:`physdiff.physics.official_rule`.
- ``"highres"``: sub-bin frequency, direct decay and window-corrected initial level from a
  complex frame-ratio fit per bin; see :mod:`physdiff.physics.highres`.

A new estimator is a function ``fn(audio (B, T), sample_rate, *, n_fft, hop_length, floor_db,
decay_convention, **options) -> Modes`` decorated with ``@register_estimator("name")``; its own
options (the paper rule's ``fft_pad``, the official rule's ``window_hz``, highres's ``margin_db``) pass through ``estimate_modes``.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from physdiff.physics.highres import highres
from physdiff.physics.modes import Modes
from physdiff.physics.official_rule import official_rule
from physdiff.physics.paper_rule import paper_rule

__all__ = ["estimate_modes", "list_estimators", "register_estimator", "get_estimator"]

Estimator = Callable[..., Modes]
_ESTIMATORS: dict[str, Estimator] = {}


def register_estimator(name: str) -> Callable[[Estimator], Estimator]:
    """Decorator: make ``fn`` selectable as ``estimate_modes(..., method=name)``."""

    def deco(fn: Estimator) -> Estimator:
        if name in _ESTIMATORS and _ESTIMATORS[name] is not fn:
            raise ValueError(f"estimator {name!r} is already registered")
        _ESTIMATORS[name] = fn
        return fn

    return deco


def list_estimators() -> list[str]:
    """Names accepted by ``estimate_modes(method=...)``."""
    return sorted(_ESTIMATORS)


def get_estimator(name: str) -> Estimator:
    try:
        return _ESTIMATORS[name]
    except KeyError:
        raise ValueError(f"unknown modal estimator {name!r}; choose one of {list_estimators()}") from None


register_estimator("paper")(paper_rule)
register_estimator("official")(official_rule)
register_estimator("highres")(highres)


def estimate_modes(
    audio: torch.Tensor,
    sample_rate: float,
    *,
    n_fft: int = 2048,
    hop_length: int = 256,
    floor_db: float = -80.0,
    method: str = "paper",
    decay_convention: str = "fit",
    **options: Any,
) -> Modes:
    """Estimate one mode (f Hz, p dB, lambda dB/s; eq. 4) per STFT bin for each clip.

    ``audio``: ``(B, T)`` or ``(T,)`` float tensor on any device (the result follows it). Any length
    T >= 1 works: D = n_fft // 2 + 1 is fixed by ``n_fft``; the frame count (and so the "never reaches
    the floor" time) follows T. Each clip is peak-normalised first, so its scale does not matter;
    an all-zero clip gives defined modes (bin-centre f, p = floor_db, lambda = 0 with "fit"); NaN or
    inf input raises ValueError naming the clips. ``options`` are the chosen estimator's own keywords
    (e.g. ``fft_pad=4`` for "paper"). Returns :class:`Modes` with ``(B, D)`` fields.
    """
    fn = get_estimator(method)
    return fn(
        audio,
        sample_rate,
        n_fft=n_fft,
        hop_length=hop_length,
        floor_db=floor_db,
        decay_convention=decay_convention,
        **options,
    )
