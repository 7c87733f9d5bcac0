"""How ``generate`` and ``edit`` find the trained run they load.

1. ``--run-from RUN``: a diffusion run folder (``<data>/runs/diffusion-<variant>-<hash>``) is used as it is;
   its upstream runs and shards are found under the data folder it lives in, from any working directory.
2. ``--run-from DATA`` (a data folder) or ``--data-root DATA``, with ``--preset`` / ``--config`` / overrides:
   the diffusion run of that config in that data folder.
3. The same without a preset: the one finished diffusion run there (of the variant asked for, if any).

A run that is not there is an error listing the finished diffusion runs with their presets and variants.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from physdiff.errors import DataError


def finished_diffusion_runs(root: Path) -> list[tuple[Path, str, str]]:
    """(folder, preset, variant) of every finished diffusion run under ``<root>/runs``, newest first."""
    out = []
    runs = sorted((root / "runs").glob("diffusion-*/DONE.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for done in runs:
        try:
            c = json.loads((done.parent / "config.json").read_text())
            out.append((done.parent, str(c.get("preset", "?")), str(c.get("diffusion", {}).get("variant", "?"))))
        except (OSError, ValueError):
            continue
    return out


def _listing(root: Path) -> str:
    found = finished_diffusion_runs(root)
    if not found:
        return f"no finished diffusion run under {root / 'runs'} (train one: physdiff launch --stage all ...)"
    return "finished diffusion runs: " + "; ".join(f"{p} (preset {pr}, variant {v})" for p, pr, v in found)


def resolve_diffusion_run(args: Any, variant: str | None = None) -> Path:
    """The diffusion run folder ``args`` names (see the module docstring); ``variant`` narrows rule 3."""
    from physdiff import identity
    from physdiff.cli.common import config_from_args
    from physdiff.paths import data_root

    given = Path(args.run_from).expanduser().resolve() if getattr(args, "run_from", None) else None
    if given is not None and (given / "config.json").is_file() and not (given / "runs").is_dir():
        if not (given / "DONE.json").is_file():
            raise DataError(f"--run-from {given} is not a finished run (no DONE.json); {_listing(given.parent.parent)}")
        return given
    if given is not None and not (given / "runs").is_dir():
        raise DataError(f"--run-from {given} is neither a diffusion run folder (config.json) nor a data folder (runs/)")
    flag_root = given or (Path(args.data_root).expanduser().resolve() if getattr(args, "data_root", None) else None)
    explicit = bool(getattr(args, "preset", None) or getattr(args, "config", None))
    if explicit:
        # the data folder: --run-from DATA / --data-root, else the config's own paths.data_root
        cfg = config_from_args(args, {"paths.data_root": str(flag_root) if flag_root else None})
        root = cfg.paths.root()
        if variant is not None:
            cfg = identity.variant_config(cfg, variant)
        run = identity.artifact_dir(cfg, "diffusion")
        if not (run / "DONE.json").is_file():
            raise DataError(f"no finished diffusion run for this config ({run}); {_listing(root)}")
        return run
    root = flag_root or data_root(None)
    found = [r for r in finished_diffusion_runs(root) if variant is None or r[2] == variant]
    if len(found) == 1:
        return found[0][0]
    what = f" of variant {variant!r}" if variant else ""
    if not found:
        others = finished_diffusion_runs(root)
        hint = _listing(root) if others else "train one: physdiff launch --stage all ..."
        raise DataError(f"no finished diffusion run{what} under {root / 'runs'}; {hint}")
    raise DataError(f"{len(found)} finished diffusion runs{what} under {root / 'runs'}: choose one with --run-from "
                    f"or --preset; {_listing(root)}")
