"""Config sections ``classifier`` (the metric classifier stage) and ``eval`` (what Tables 1 and 3 compare)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from physdiff.configlib import ConfigError, nonsemantic

CLASSIFIER_BACKBONES = ("resnet50", "resnet18", "tiny")
# The rows Table 1 / Table 3 / Fig. 5b can hold (physdiff.stages.rows): retrieval of a training recording,
# the regression baselines, the diffusion variants, Owens et al.'s retrieval by predicted sound features,
# and the components of Fig. 5b.
DIFFUSION_ROWS = ("video", "video_label", "video_spec", "video_mfcc", "ours")
REGRESSION_ROWS = ("convnet", "tts")  # Table 1's ConvNet- and Transformer-based systems (no diffusion)
# Table 1: the paper's seven systems in its order, after NN retrieval (Table 3's baseline, kept beside them)
EVAL_VARIANTS = ("nn_retrieval", *REGRESSION_ROWS, *DIFFUSION_ROWS)
TABLE3_ROWS = ("nn_retrieval", "owens_retrieval")  # NN via visual features; NN via predicted sound features
FIG5B_ROWS = ("modal", "modal_residual", "ours", "predicted_mu")  # eq. 4; eqs. 4-6; ours; mu regressed from nu
KNOWN_ROWS = (*EVAL_VARIANTS, "owens_retrieval", "modal", "modal_residual", "predicted_mu")
# the rows of the tests' debug preset before the comparison systems were stages (tests name the others they train)
_DEBUG_TABLE1 = ("nn_retrieval", "video", "video_label", "video_spec", "ours")


@dataclass
class ClassifierConfig:
    """The spectrogram material classifier behind FID, KID, KL and accuracy (a stage on the training engine).

    It trains on real training spectrograms, augmented (``physdiff.eval.spec_augment``) so it learns
    material rather than the training videos' rooms and objects. ``world_videos`` > 0 trains it on an
    independent generated world of that many videos drawn with ``world_seed`` (its own pipeline steps;
    only meaningful on generated data, see docs/deviations.md).
    """

    backbone: str = "resnet50"  # "resnet50" | "resnet18" (torchvision, 1-channel stem) | "tiny"
    width: int = 16  # base width of the "tiny" CNN (features = 8 x width)
    dropout: float = 0.0
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3  # peak of a per-step cosine schedule
    weight_decay: float = 1e-4
    pretrained: str = ""  # local weights (safetensors / weights-only torch) to start from; "" = random init
    aug_gain_db: float = 10.0  # random gain, uniform in +-this (a constant log-magnitude offset)
    aug_shift: float = 0.06  # onset jitter, max fraction of the frames (2 of tiny's 32)
    aug_freq_mask: float = 0.12  # SpecAugment frequency masks: max width, fraction of the bins
    aug_freq_masks: int = 2
    aug_time_mask: float = 0.2  # one time mask: max width, fraction of the frames
    world_videos: int = 0  # > 0: train on an independent generated world of this many videos
    world_seed: int = 1000  # that world's world.seed (its objects, rooms and recordings differ)

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"backbone": "tiny", "epochs": 20, "dropout": 0.3, "world_videos": 200, "weight_decay": 1e-2},
        "debug": {"width": 8, "epochs": 2, "world_videos": 0},
    }

    def validate(self) -> None:
        if self.backbone not in CLASSIFIER_BACKBONES:
            raise ConfigError(f"classifier.backbone must be one of {', '.join(CLASSIFIER_BACKBONES)}, got {self.backbone!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"classifier.dropout must be in [0, 1), got {self.dropout}")
        if self.width < 1 or self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("classifier.width, classifier.epochs and classifier.batch_size must be >= 1")
        if not (math.isfinite(self.lr) and math.isfinite(self.weight_decay)) or not self.lr > 0 or self.weight_decay < 0:
            raise ConfigError(f"classifier.lr must be > 0 and classifier.weight_decay >= 0, got {self.lr}, {self.weight_decay}")
        if self.aug_gain_db < 0 or self.aug_freq_masks < 0:
            raise ConfigError("classifier.aug_gain_db and classifier.aug_freq_masks must be >= 0")
        for name in ("aug_shift", "aug_freq_mask", "aug_time_mask"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"classifier.{name} is a fraction of the spectrogram and must be in [0, 1), "
                                  f"got {getattr(self, name)}")
        if self.world_videos < 0 or self.world_seed < 0:
            raise ConfigError("classifier.world_videos and classifier.world_seed must be >= 0")


@dataclass
class EvalConfig:
    """Evaluation (paper Sec. 4): the Table 1 rows, Table 3's sampler steps, FID/KID settings, retrieval."""

    variants: tuple[str, ...] = EVAL_VARIANTS  # Table 1's rows
    table3: tuple[str, ...] = TABLE3_ROWS  # Table 3's retrieval rows, beside "ours" at each sampler setting
    fig5b: tuple[str, ...] = FIG5B_ROWS  # Fig. 5b: each component, retrieval by nu throughout (predicted_mu: regressed)
    ddim_steps: tuple[int, ...] = (10, 25, 50, 200)  # Table 3, against ancestral DDPM with all T steps
    table3_ddpm: bool = True  # Table 3's ancestral DDPM over all T steps (slow on a CPU: ~4 s per clip in tiny)
    kid_subsets: int = 100
    kid_subset_size: int = 1000  # capped at half the test clips, so the subsets differ and KID's std is a real spread
    kid_degree: int = 3  # polynomial kernel (x.y / D + 1)^3, Binkowski et al.
    metric_seed: int = 0  # KID subset draws and the bootstrap's resamples
    bootstrap: int = 1000  # resamples of the test clips for every metric's interval (0 = no intervals)
    bootstrap_set: int = 200  # of which FID / KID are recomputed on the first this many
    ci_level: float = 0.95
    retrieval_k: int = 1
    retrieval_backend: str = nonsemantic("torch")  # "torch" (cdist + topk, exact) | "faiss" (when installed; exact too)
    retrieval_chunk_size: int = nonsemantic(32768)
    retrieval_query_batch: int = nonsemantic(1024)
    batch_size: int = nonsemantic(64)  # classifier batch when scoring

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        # the main job's 20-minute CPU budget: the cheap rows (bench/quality.py runs all; the measured seconds of
        # the others are in docs/deviations.md, "The tiny main job's rows")
        "tiny": {"kid_subsets": 50, "ddim_steps": (10, 25, 50), "variants": ("nn_retrieval", "tts", "video", "ours"),
                 "table3_ddpm": False},
        "debug": {"variants": _DEBUG_TABLE1, "table3": ("nn_retrieval",), "fig5b": ("modal", "modal_residual", "ours"),
                  "table3_ddpm": True, "kid_subsets": 10, "ddim_steps": (10,), "bootstrap": 100, "bootstrap_set": 20},
    }

    def validate(self) -> None:
        if not self.variants:
            raise ConfigError("eval.variants is empty: Table 1 needs at least one row")
        for name in ("variants", "table3", "fig5b"):
            unknown = [v for v in getattr(self, name) if v not in KNOWN_ROWS]
            if unknown:
                raise ConfigError(f"eval.{name} {list(getattr(self, name))}: unknown {unknown}; choose from {', '.join(KNOWN_ROWS)}")
        if self.bootstrap < 0 or self.bootstrap_set < 0 or not 0.5 < self.ci_level < 1.0:
            raise ConfigError("eval.bootstrap and eval.bootstrap_set must be >= 0 and eval.ci_level in (0.5, 1)")
        if self.kid_subsets < 1 or self.kid_subset_size < 2:
            raise ConfigError("eval.kid_subsets must be >= 1 and eval.kid_subset_size >= 2")
        if any(s < 1 for s in self.ddim_steps):
            raise ConfigError(f"eval.ddim_steps must be positive, got {self.ddim_steps}")
        if self.retrieval_backend not in ("torch", "faiss"):
            raise ConfigError(f"eval.retrieval_backend must be torch or faiss, got {self.retrieval_backend!r}")
        if self.retrieval_k < 1 or self.batch_size < 1:
            raise ConfigError("eval.retrieval_k and eval.batch_size must be >= 1")

    @property
    def rows(self) -> tuple[str, ...]:
        """Every row the evaluation scores (Table 1, Table 3's retrieval rows, Fig. 5b), once each, in order."""
        out: list[str] = []
        for v in (*self.variants, *self.table3, *self.fig5b, *(("ours",) if self.ddim_steps or self.table3_ddpm else ())):
            if v not in out:
                out.append(v)
        return tuple(out)

    @property
    def diffusion_variants(self) -> tuple[str, ...]:
        """The diffusion runs the evaluation reads (each one a pipeline job); ``predicted_mu`` samples "ours"."""
        out = [v for v in self.rows if v in DIFFUSION_ROWS]
        if "predicted_mu" in self.rows and "ours" not in out:
            out.append("ours")
        return tuple(out)
