"""The stage registry: every stage of the pipeline, what kind it is, and where its code lives.

Three kinds of stage, all addressed by name (``physdiff launch --stage NAME``):

- ``data``: a function ``fn(cfg) -> summary`` that makes a data artifact (the world, the shards);
- ``train``: a :class:`physdiff.training.recipe.Recipe` the training engine runs (checkpoints, resume,
  DDP, tracking, exported weights);
- ``task``: a function ``fn(cfg) -> summary`` that only reads finished artifacts (index, generate, evaluate).

Targets are import paths, imported when used, so the registry costs nothing to load. Where each
stage's output lives is :mod:`physdiff.identity`; what it writes and reads is :mod:`physdiff.artifacts`;
the order and dependencies of a full run are :mod:`physdiff.launch.pipeline`. Adding a stage is one
line here plus its module::

    STAGES["mystage"] = StageSpec("mystage", "train", "mypackage.mystage:MyRecipe", "what it learns")
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from physdiff.errors import PhysdiffError
from physdiff.identity import shards_dir, world_dir  # noqa: F401  (the data folders, re-exported for stages)

KINDS = ("data", "train", "task")


@dataclass(frozen=True)
class StageSpec:
    name: str
    kind: str  # one of KINDS
    target: str  # "package.module:attribute"
    help: str = ""

    def load(self) -> Any:
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)


# Pipeline order.
STAGES: dict[str, StageSpec] = {s.name: s for s in (
    StageSpec("world", "data", "physdiff.stages.data:run_world", "generate the synthetic world (Greatest Hits layout)"),
    StageSpec("shards", "data", "physdiff.stages.data:run_shards", "cut the world's videos into WebDataset shards"),
    StageSpec("prior", "train", "physdiff.stages.prior:PriorRecipe", "the residual prior (w, gamma) of every clip"),
    StageSpec("video", "train", "physdiff.stages.video:VideoRecipe", "the TSM ResNet material classifier; nu per clip"),
    StageSpec("classifier", "train", "physdiff.stages.classifier:ClassifierRecipe",
              "the spectrogram material classifier behind FID, KID, KL and accuracy"),
    StageSpec("diffusion", "train", "physdiff.stages.diffusion:DiffusionRecipe",
              "the spectrogram diffusion model (one run per diffusion.variant)"),
    StageSpec("index", "task", "physdiff.stages.index:run_index", "the nu -> latent retrieval table of a diffusion run"),
    # the paper's comparison systems (Tables 1 and 3, Fig. 5b), each scored by the evaluate stage
    StageSpec("convnet", "train", "physdiff.stages.regression:ConvNetRecipe",
              "Table 1's ConvNet-based system: per-frame video features -> U-Net -> spectrogram (L1)"),
    StageSpec("tts", "train", "physdiff.stages.regression:TTSRecipe",
              "Table 1's Transformer-based system: TTS-style encoder-decoder, frames -> spectrogram (L1)"),
    StageSpec("owens", "train", "physdiff.stages.owens:OwensRecipe",
              "Table 3's NN via predicted sound features (Owens et al. 2016): CNN + LSTM -> cochleagram"),
    StageSpec("mu_regressor", "train", "physdiff.stages.mu_regressor:MuRegressorRecipe",
              "Fig. 5b's nu -> mu regressor (the 'ours' run's mu predicted from video)"),
    StageSpec("generate", "task", "physdiff.stages.generate:run_generate", "sound for the silent test videos"),
    StageSpec("evaluate", "task", "physdiff.stages.evaluate:run_evaluate", "Tables 1 and 3 on the test split"),
)}


def register_stage(spec: StageSpec) -> None:
    """Add (or replace) a stage; it joins ``--stage`` choices. Where it runs in ``--stage all`` is the pipeline's."""
    if spec.kind not in KINDS:
        raise PhysdiffError(f"stage kind must be one of {KINDS}, got {spec.kind!r}")
    STAGES[spec.name] = spec


def stage(name: str) -> StageSpec:
    if name not in STAGES:
        raise PhysdiffError(f"unknown stage '{name}'; stages: {', '.join(STAGES)}")
    return STAGES[name]


def stage_names(kind: str | None = None) -> list[str]:
    return [n for n, s in STAGES.items() if kind is None or s.kind == kind]


def get_recipe(name: str) -> Any:
    """A fresh recipe instance of a training stage (clear error for unknown or non-training names)."""
    spec = stage(name)
    if spec.kind != "train":
        raise PhysdiffError(f"stage '{name}' is a {spec.kind} stage, not a training stage; "
                            f"training stages: {', '.join(stage_names('train'))}")
    return spec.load()()


def train_stage(cfg: Any, name: str, **kw: Any) -> Any:
    """Train a registered stage in this process (resuming its run folder): :func:`physdiff.training.trainer.train`."""
    from physdiff.training.trainer import train

    return train(cfg, get_recipe(name), **kw)


def run_function_stage(name: str, cfg: Any) -> dict[str, Any]:
    """Run a data or task stage in this process; returns its summary dict."""
    spec = stage(name)
    if spec.kind == "train":
        raise PhysdiffError(f"stage '{name}' is a training stage: launch it through the engine (train_stage)")
    return spec.load()(cfg)


def stage_run_dir(cfg: Any, name: str) -> Path:
    """The folder a stage writes for ``cfg`` (a run folder, or the world / shard folder)."""
    from physdiff import identity
    from physdiff.training.trainer import run_dir_for

    spec = stage(name)
    if spec.kind == "train":
        return run_dir_for(cfg, get_recipe(name))
    return identity.artifact_dir(cfg, name)
