"""``physdiff sweep <study>``: a Ray Tune study (one module per study in :mod:`physdiff.sweeps`).

    physdiff sweep residual-dims --preset tiny --dims 0,10,25 --lr 5e-4,2e-3   # the paper's Fig. 5a
    physdiff sweep residual-dims --resume --name NAME
"""

from __future__ import annotations

import importlib


def main(argv: list[str] | None = None) -> int:
    from physdiff.errors import PhysdiffError
    from physdiff.sweeps import STUDIES

    argv = list(argv or [])
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip() + "\n\nstudies: " + ", ".join(STUDIES))
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in STUDIES:
        raise PhysdiffError(f"unknown study {name!r}; studies: {', '.join(STUDIES)}")
    module, _, fn = STUDIES[name].partition(":")
    return int(getattr(importlib.import_module(module), fn)(rest) or 0)
