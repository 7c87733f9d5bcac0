"""The stage registry: which recipes exist, in which order the pipeline runs them, where outputs live.

Training stages are :class:`physdiff.training.recipe.Recipe` subclasses registered by import path
(lazily imported, so registering costs nothing). Later stages add one line to ``TRAINING_STAGES``::

    TRAINING_STAGES["diffusion"] = "physdiff.stages.diffusion:DiffusionRecipe"

Paths derived from the config (all under the data folder, each named by a hash of only the config
keys that define its content, so changing e.g. the diffusion width does not rebuild the shards):

    <data_root>/world/<hash(seed, world)>                  the synthetic world (shards/synth.py)
    <data_root>/shards/<hash(seed, world, audio, physics, shards)>   WebDataset shards (shards/build.py)
    <data_root>/runs/<stage>-<hash(recipe.sections)>       one training stage run
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from physdiff.configlib import config_hash
from physdiff.errors import PhysdiffError

# name -> "module:Recipe" (order here is the pipeline order of the training stages)
TRAINING_STAGES: dict[str, str] = {
    "prior": "physdiff.stages.prior:PriorRecipe",
    "video": "physdiff.stages.video:VideoRecipe",
    "diffusion": "physdiff.stages.diffusion:DiffusionRecipe",
}

# Task stages: no training loop, one function ``fn(cfg) -> dict`` each, run after the training stages in
# this order (the retrieval index, generation from the test videos, the Table 1 / Table 3 evaluation).
TASK_STAGES: dict[str, str] = {
    "index": "physdiff.stages.index:run_index",
    "generate": "physdiff.stages.generate:run_generate",
    "evaluate": "physdiff.stages.evaluate:run_evaluate",
}

WORLD_SECTIONS = ("world",)
SHARD_SECTIONS = ("world", "audio", "physics", "shards")


def register_stage(name: str, target: str) -> None:
    """Register a training stage recipe by import path ``"package.module:ClassName"``."""
    TRAINING_STAGES[name] = target


def stage_names() -> list[str]:
    return list(TRAINING_STAGES)


def get_recipe(name: str) -> Any:
    """A fresh recipe instance of a registered training stage (clear error for unknown names)."""
    if name not in TRAINING_STAGES:
        raise PhysdiffError(f"unknown stage '{name}'; training stages: {', '.join(TRAINING_STAGES)}")
    module, _, attr = TRAINING_STAGES[name].partition(":")
    return getattr(importlib.import_module(module), attr)()


def task_stage_names() -> list[str]:
    return list(TASK_STAGES)


def run_task_stage(name: str, cfg: Any) -> dict[str, Any]:
    """Run a task stage (index, generate, evaluate) in this process; returns its summary dict."""
    if name not in TASK_STAGES:
        raise PhysdiffError(f"unknown task stage '{name}'; task stages: {', '.join(TASK_STAGES)}")
    module, _, attr = TASK_STAGES[name].partition(":")
    return getattr(importlib.import_module(module), attr)(cfg)


def world_dir(cfg: Any) -> Path:
    return cfg.paths.root() / "world" / config_hash(cfg, sections=WORLD_SECTIONS)


def shards_dir(cfg: Any) -> Path:
    """The shard root of this config: ``train.shards`` when set, else the shards stage's output."""
    if getattr(cfg.train, "shards", ""):
        return Path(cfg.train.shards).expanduser().resolve()
    return cfg.paths.root() / "shards" / config_hash(cfg, sections=SHARD_SECTIONS)


def stage_run_dir(cfg: Any, name: str) -> Path:
    """The run folder a training stage uses for this config (what ``train`` will write)."""
    from physdiff.training.trainer import run_dir_for

    return run_dir_for(cfg, get_recipe(name))
