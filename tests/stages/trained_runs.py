"""Trained upstream runs for the index / generate / evaluate tests (a helper module, not a conftest).

Every stage of the ``debug`` preset trained for one epoch of two batches on the session's generated debug
world (the root fixture ``debug_data``), through the engine's in-process API. ``diffusion.timesteps=10``
keeps the DDPM-over-all-T row of Table 3 cheap. Runs are keyed by their config hash, so the first test
module that asks trains them and later ones find them finished (``train_stage`` returns "skipped").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from physdiff.config import resolve_config

FAST = ["tracking.enabled=false", "train.progress=false", "loader.num_workers=0", "train.epochs=1",
        "train.batches_per_epoch=2", "diffusion.timesteps=10", "diffusion.eval_sample_steps=2",
        "sampling.steps=2", "eval.ddim_steps=[2]", "eval.kid_subsets=5"]
VARIANTS = ("ours", "video", "video_label", "video_spec")


def overrides(debug_data: dict) -> list[str]:
    return [*debug_data["overrides"], *FAST]


def config(debug_data: dict, extra: list[str] = ()) -> Any:
    return resolve_config("debug", [*overrides(debug_data), *extra])


def train_upstream(debug_data: dict, variants: tuple[str, ...] = ("ours",), classifier: bool = False) -> dict[str, Path]:
    """{"prior": run, "video": run, "diffusion": {variant: run}, "index": {variant: run}} of finished runs (made now
    when missing), and the metric classifier's run when ``classifier``: what generate and evaluate read."""
    from physdiff.inference.conditioning import LATENT_NAME
    from physdiff.stages import train_stage
    from physdiff.stages.index import run_index

    cfg = config(debug_data)
    runs: dict = {"diffusion": {}, "index": {}}
    for stage in ("prior", "video", *(("classifier",) if classifier else ())):
        r = train_stage(cfg, stage, cpu=True)
        assert r.status in ("finished", "skipped"), (stage, r.status)
        runs[stage] = r.run_dir
    for v in variants:
        vcfg = config(debug_data, [f"diffusion.variant={v}"])
        r = train_stage(vcfg, "diffusion", cpu=True)
        assert r.status in ("finished", "skipped"), (v, r.status)
        runs["diffusion"][v] = r.run_dir
        if LATENT_NAME[v] is not None:
            runs["index"][v] = Path(run_index(vcfg)["path"])
    return runs
