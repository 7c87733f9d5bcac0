"""The index stage (paper Sec. 3.4): the nu -> latent retrieval table of a finished diffusion run.

Its own run folder, ``<data>/runs/index-<variant>-<hash>`` (named by the diffusion run's identity), holds
``index.safetensors`` + ``index.json`` + ``DONE.json`` (:mod:`physdiff.inference.index`); an index that
names the same diffusion weights is reused, anything else is rebuilt::

    physdiff launch --stage index --local --preset tiny                        # after the diffusion stage
    physdiff launch --stage index --local --preset tiny diffusion.variant=video_spec
"""

from __future__ import annotations

import logging
from typing import Any

from physdiff import identity
from physdiff.errors import DataError

log = logging.getLogger(__name__)


def run_index(cfg: Any, *, force: bool = False) -> dict[str, Any]:
    """Index the diffusion run of ``cfg`` (its ``diffusion.variant``); skipped when its index is current."""
    from physdiff.inference.conditioning import LATENT_NAME
    from physdiff.inference.index import build_run_index, load_run_index
    from physdiff.training.tracking import track_task

    variant = cfg.diffusion.variant
    if LATENT_NAME[variant] is None:
        log.info(f"[index] variant '{variant}' retrieves no latent: nothing to index")
        return {"stage": "index", "variant": variant, "built": False, "path": None}
    diffusion_run = identity.artifact_dir(cfg, "diffusion")
    out = identity.artifact_dir(cfg, "index")
    if not force and (out / "DONE.json").is_file():
        try:
            index = load_run_index(out, diffusion_run)
            log.info(f"[index] complete: {out} ({len(index)} training clips)")
            return {"stage": "index", "variant": variant, "built": False, "path": str(out), "count": len(index)}
        except DataError as e:  # stale (other weights) or damaged: rebuilt below, and said why
            log.info(f"[index] rebuilding {out}: {e}")
    with track_task(cfg, out, "index", identity.artifact_hash(cfg, "index")) as tracker:
        index, path = build_run_index(diffusion_run, out)
        tracker.log_artifact(path, "index")
        tracker.log_artifact(path.with_suffix(".json"), "index")
        tracker.set_tags({"physdiff.diffusion_run": diffusion_run.name})
    log.info(f"[index] built: {path} ({len(index)} training clips, nu {index.key_dim}-d -> "
          f"{index.manifest.get('value_name')} {index.value_dim}-d)")
    return {"stage": "index", "variant": variant, "built": True, "path": str(out), "count": len(index)}
