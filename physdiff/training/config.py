"""Config sections ``train`` (the engine), ``tracking`` (MLflow) and ``prior`` (the residual-parameter stage)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from physdiff.configchecks import at_least, nonnegative_finite, positive_finite, rate, stage_overrides
from physdiff.configlib import ConfigError, nonsemantic

MIXED_PRECISION = ("no", "bf16", "fp16")


@dataclass
class TrainConfig:
    """The training engine (physdiff.training.trainer): optimiser, schedule, checkpoints.

    AdamW with lr 5e-4 and weight decay 1e-4 as in the paper's code; lr x ``lr_decay`` per epoch.
    ``batches_per_epoch`` fixes the number of optimiser micro-batches each rank sees per epoch
    (0 = one pass over the training split), so every rank steps the same number of times.
    """

    epochs: int = 200
    batches_per_epoch: int = 0  # 0 -> ceil(train clips / (batch x ranks))
    lr: float = 5e-4
    weight_decay: float = 1e-4
    lr_decay: float = 0.95  # lr x 0.95 per epoch (the paper; official: x 0.1^(1/50) = x 0.955 per epoch)
    grad_clip: float = 0.0  # max gradient norm; 0 disables clipping (the paper and the official code do not clip)
    grad_accum: int = 1
    mixed_precision: str = "no"  # "no" | "bf16" | "fp16"
    ema_decay: float = 0.0  # 0 disables EMA weights
    deterministic: bool = True  # torch.use_deterministic_algorithms (CPU runs are bitwise reproducible)
    eval_every: int = 1  # evaluate every N epochs (and after the last); semantic: it decides which epoch is selected
    patience: int = 0  # stop after this many evaluations without a better selection metric (0 = never)
    eval_batches: int = nonsemantic(0)  # 0 -> the whole validation split
    checkpoint_every: int = nonsemantic(500)  # optimiser steps; also at every epoch end and on a stop signal
    keep_checkpoints: int = nonsemantic(3)
    log_every: int = nonsemantic(10)
    shards: str = nonsemantic("")  # shard root; "" -> the shards stage output for this config
    progress: bool = nonsemantic(True)  # tqdm bar on rank 0
    # seconds a launcher or trainer waits for another process that holds the run folder's lock
    # (physdiff.training.runlock) before refusing; a requeued job whose predecessor is still exiting waits
    lock_timeout: float = nonsemantic(60.0)

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        # short epochs on small data: the per-epoch decay is gentler; grad_clip kept at its value before the
        # paper fix (docs/deviations.md), so tiny's results stay comparable
        "tiny": {"epochs": 10, "lr_decay": 0.98, "grad_clip": 1.0},
        "debug": {"epochs": 2, "checkpoint_every": 50, "log_every": 2},
    }

    def validate(self) -> None:
        if self.mixed_precision not in MIXED_PRECISION:
            raise ConfigError(f"train.mixed_precision must be one of {MIXED_PRECISION}, got {self.mixed_precision!r}")
        if self.grad_accum < 1:
            raise ConfigError(f"train.grad_accum must be >= 1, got {self.grad_accum}")
        if self.epochs < 1:
            raise ConfigError(f"train.epochs must be >= 1, got {self.epochs}")
        if self.keep_checkpoints < 1:
            raise ConfigError(f"train.keep_checkpoints must be >= 1, got {self.keep_checkpoints}")
        # every *_every is a divisor of the step or epoch count
        at_least("train", self, 1, "eval_every", "checkpoint_every", "log_every")
        at_least("train", self, 0, "batches_per_epoch", why=" (0 = one pass over the training split)")
        at_least("train", self, 0, "eval_batches", why=" (0 = the whole validation split)")
        positive_finite("train", self, "lr")
        nonnegative_finite("train", self, "weight_decay")
        nonnegative_finite("train", self, "grad_clip", why=" (0 = no clipping)")
        # lr x lr_decay per epoch: <= 0 flips or zeroes the lr (gradient ascent), > 1 grows it without bound
        if not 0.0 < self.lr_decay <= 1.0:  # False for NaN too
            raise ConfigError(f"train.lr_decay must be in (0, 1] (the lr is multiplied by it every epoch), got {self.lr_decay}")
        rate("train", self, "ema_decay")  # 0 = no EMA; 1 would never move the EMA weights
        nonnegative_finite("train", self, "lock_timeout")


@dataclass
class TrackingConfig:
    """MLflow tracking; rank 0 logs, training never depends on it (metrics also go to metrics.jsonl)."""

    tracking_uri: str = nonsemantic("")  # "" -> $MLFLOW_TRACKING_URI or sqlite in the data folder
    experiment: str = nonsemantic("physdiff")
    enabled: bool = nonsemantic(True)
    parent_run_id: str = nonsemantic("")  # nest this stage run under a parent (e.g. a sweep)
    run_name: str = nonsemantic("")  # "" -> "<stage>-<hash>"
    audio_examples: int = nonsemantic(2)  # spectrogram figures + WAVs logged per evaluation

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}

    def validate(self) -> None:
        at_least("tracking", self, 0, "audio_examples")


@dataclass
class PriorConfig:
    """The residual-parameter prior (Sec. 3.2): transformer over log-spectrogram frames -> (w, gamma).

    ``residual_dims`` is M, the number of noise bands (Fig. 5a); 0 = modal resynthesis only.
    """

    residual_dims: int = 100
    epochs: int = 0  # 0 -> train.epochs
    d_model: int = 256
    layers: int = 4
    heads: int = 4
    dropout: float = 0.1
    t60_min: float = 1e-5  # official: T60 = 1e-5 + 0.5 * sigmoid(.) seconds
    t60_range: float = 0.5
    # Initial band weight w (bias of the sigmoid head). The official head starts at sigmoid(0) = 0.5:
    # 100 unit-RMS bands at 0.5 are ~10x louder than the modal part, and training spends its first
    # epochs only turning them down. Starting quiet lets the residual grow where it helps.
    init_weight: float = 0.005
    # Official: the residual is added to the *peak-normalised* modal resynthesis, then the sum is normalised
    # (physdiff.physics.modal_plus_residual), so w is relative to a unit-peak modal part. False adds it to the
    # raw eq.-4 sum (tiny's value before the paper fix, docs/deviations.md).
    normalize_modal: bool = True

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"d_model": 64, "layers": 2, "normalize_modal": False},
        "debug": {"d_model": 32, "layers": 1},
    }

    def validate(self) -> None:
        if self.residual_dims < 0:
            raise ConfigError(f"prior.residual_dims must be >= 0, got {self.residual_dims}")
        at_least("prior", self, 1, "d_model", "layers", "heads")
        if self.d_model % self.heads:
            raise ConfigError(f"prior.d_model ({self.d_model}) must be divisible by prior.heads ({self.heads})")
        stage_overrides("prior", self)
        rate("prior", self, "dropout")
        positive_finite("prior", self, "t60_min", "t60_range")
        rate("prior", self, "init_weight", hi=1.0)
        if self.init_weight == 0:
            raise ConfigError("prior.init_weight must be in (0, 1) (the initial sigmoid output of the band weights), got 0")
