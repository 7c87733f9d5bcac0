"""The data stages: the synthetic world, and the shards cut from it (both skipped when already complete).

    physdiff launch --stage world --local --preset tiny       # <data>/world/<hash>
    physdiff launch --stage shards --local --preset tiny      # <data>/shards/<hash>

On real data, build shards with ``physdiff shards --source /datasets/vis-data --out DIR`` and point the
training stages at them with ``train.shards=DIR``; these stages then have nothing to do.
"""

from __future__ import annotations

import logging
from typing import Any

from physdiff import identity
from physdiff.training.tracking import track_task

log = logging.getLogger(__name__)


def _tracking_dir(cfg: Any, stage: str, h: str) -> Any:
    """``<data>/runs/<stage>-<hash>``: where a data stage keeps its MLflow run id and metrics (not in the data)."""
    return cfg.paths.root() / "runs" / f"{stage}-{h}"


def run_world(cfg: Any, *, progress: bool | None = None) -> dict[str, Any]:
    """Generate ``cfg``'s world unless its folder already holds exactly it."""
    from physdiff.world.generate import ensure_world

    out = identity.world_dir(cfg)
    if cfg.train.shards:
        log.info(f"[world] skipped: train.shards={cfg.train.shards} names existing shards")
        return {"stage": "world", "skipped": True}
    h = identity.artifact_hash(cfg, "world")
    with track_task(cfg, _tracking_dir(cfg, "world", h), "world", h) as tracker:
        _, summary = ensure_world(cfg, out, progress=cfg.train.progress if progress is None else progress)
        if summary is not None:
            tracker.log_metrics({"world/videos": summary["videos"], "world/events": summary["events"],
                                 "world/wall_seconds": summary["wall_seconds"]}, step=0)
    state = "complete" if summary is None else f"wrote {summary['videos']} videos, {summary['events']} events"
    log.info(f"[world] {state}: {out}")
    return {"stage": "world", "out": str(out), "built": summary is not None}


def run_shards(cfg: Any) -> dict[str, Any]:
    """Build (or resume) the shards of ``cfg``'s world; complete when ``summary.json`` exists."""
    from physdiff.data.build import build_shards, format_summary

    out = identity.shards_dir(cfg)
    if cfg.train.shards:
        if not (out / "summary.json").is_file() and not (out / "train" / "manifest.json").is_file():
            from physdiff.errors import DataError

            raise DataError(f"train.shards={cfg.train.shards} holds no shards (no train/manifest.json)")
        log.info(f"[shards] given: {out}")
        return {"stage": "shards", "out": str(out), "built": False}
    h = identity.artifact_hash(cfg, "shards")
    with track_task(cfg, _tracking_dir(cfg, "shards", h), "shards", h) as tracker:
        if (out / "summary.json").is_file():
            log.info(f"[shards] complete: {out}")
            return {"stage": "shards", "out": str(out), "built": False}
        summary = build_shards(identity.world_dir(cfg), out, cfg, workers=cfg.shards.workers)
        tracker.log_metrics({"shards/written": summary["written"], "shards/skipped": summary["skipped"],
                             "shards/annotated": summary["annotated"]}, step=0)
        tracker.log_artifact(out / "summary.json")
    log.info(format_summary(summary))
    log.info(f"[shards] built: {out}")
    return {"stage": "shards", "out": str(out), "built": True, "written": summary["written"]}
