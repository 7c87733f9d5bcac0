"""Config section ``eval``: the metric classifier, FID/KID settings, the variants and sampler sweeps
of Tables 1 and 3, and the retrieval query."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from physdiff.configlib import nonsemantic


@dataclass
class EvalConfig:
    """Evaluation (paper Sec. 4: Table 1 metrics, Table 3 retrieval baseline and sampler steps)."""

    # --- spectrogram material classifier (features -> FID/KID, softmax -> KL, argmax -> accuracy)
    classifier_backbone: str = "resnet50"  # "resnet50" | "resnet18" (torchvision, 1-channel stem) | "tiny"
    classifier_width: int = 16  # base width of the "tiny" CNN (features = 8 x width)
    classifier_dropout: float = 0.0
    classifier_epochs: int = 30
    classifier_batch_size: int = 32
    classifier_lr: float = 1e-3
    classifier_weight_decay: float = 1e-4
    classifier_pretrained: str = ""  # local state dict of a trained classifier to reuse; "" = train one
    # training-only augmentation (physdiff.eval.spec_augment; docs/deviations.md): without it the classifier
    # memorises the training videos' rooms and objects; all zero = the plain spectrograms
    classifier_aug_gain_db: float = 10.0  # random gain, uniform in +-this (a constant log-magnitude offset)
    classifier_aug_shift: float = 0.06  # onset jitter, max fraction of the frames (2 of tiny's 32)
    classifier_aug_freq_mask: float = 0.12  # SpecAugment frequency masks: max width, fraction of the bins
    classifier_aug_freq_masks: int = 2
    classifier_aug_time_mask: float = 0.2  # one time mask: max width, fraction of the frames
    # train it on an independent generated world of this many videos (0 = on this config's training split);
    # only for generated data: see physdiff.stages.evaluate.classifier_shards and docs/deviations.md
    classifier_world_videos: int = 0
    classifier_world_seed: int = 1000  # that world's seed (its objects, rooms and recordings differ from `seed`'s)
    # --- FID / KID on classifier features
    kid_subsets: int = 100
    kid_subset_size: int = 1000  # capped at the number of test clips ("sized for the test set")
    kid_degree: int = 3  # polynomial kernel (x.y / D + 1)^3, Binkowski et al.
    metric_seed: int = 0  # KID subset draws
    # --- what Tables 1 and 3 compare
    variants: tuple[str, ...] = ("nn_retrieval", "video", "video_label", "video_spec", "ours")
    ddim_steps: tuple[int, ...] = (10, 25, 50, 200)  # Table 3, against ancestral DDPM with all T steps
    # --- inference-time retrieval (nu_test -> nearest training nu -> its mu)
    retrieval_k: int = 1
    retrieval_chunk_size: int = nonsemantic(32768)
    retrieval_query_batch: int = nonsemantic(1024)
    batch_size: int = nonsemantic(64)  # classifier / sampler batch at evaluation
    # --- sampling of the Table 1 rows (the paper: ancestral DDPM over all T steps, eta 1, guidance 1)
    sampler: str = "ddpm"  # "ddpm" | "ddim"
    sample_steps: int = 0  # 0 = all T steps
    eta: float = 1.0  # sigma_t = eta * sqrt(posterior variance), eq. 9
    guidance_scale: float = 1.0  # classifier-free guidance w (1 = plain conditional sampling)
    sample_seed: int = 0  # the noise of every sampled clip (results are reproducible)
    # --- generation from silent video (physdiff.stages.generate, cluster/generate.py): DDIM by default
    generate_sampler: str = "ddim"
    generate_steps: int = 50
    generate_eta: float = 0.0
    generate_split: str = "test"  # the split the generate stage renders, one folder per video
    table3_ddpm: bool = True  # Table 3's ancestral DDPM over all T steps (slow on a CPU: ~4 s per clip in tiny)
    train_missing: bool = nonsemantic(True)  # evaluate trains the diffusion variants that have no finished run

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"classifier_backbone": "tiny", "classifier_epochs": 20, "classifier_dropout": 0.3, "classifier_world_videos": 200,
                 "classifier_weight_decay": 1e-2, "kid_subsets": 50, "ddim_steps": (10, 25, 50),
                 "sampler": "ddim", "sample_steps": 50, "eta": 0.0,
                 # the main job's 20-minute CPU budget: the two rows the claim needs (bench/quality.py runs all)
                 "variants": ("nn_retrieval", "video", "ours"), "table3_ddpm": False},
        "debug": {"variants": ("nn_retrieval", "video", "video_label", "video_spec", "ours"), "table3_ddpm": True,
                  "classifier_width": 8, "classifier_epochs": 2, "kid_subsets": 10, "ddim_steps": (10,),
                  "sample_steps": 10, "generate_steps": 5, "classifier_world_videos": 0},
    }

    def __post_init__(self) -> None:
        if self.classifier_backbone not in ("resnet50", "resnet18", "tiny"):
            raise ValueError(f"eval.classifier_backbone must be resnet50, resnet18 or tiny, got {self.classifier_backbone!r}")
        if not 0.0 <= self.classifier_dropout < 1.0:
            raise ValueError(f"eval.classifier_dropout must be in [0, 1), got {self.classifier_dropout}")
        if self.classifier_aug_gain_db < 0 or self.classifier_aug_freq_masks < 0:
            raise ValueError("eval.classifier_aug_gain_db and eval.classifier_aug_freq_masks must be >= 0")
        for name in ("classifier_aug_shift", "classifier_aug_freq_mask", "classifier_aug_time_mask"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"eval.{name} is a fraction of the spectrogram and must be in [0, 1), got {getattr(self, name)}")
        if self.classifier_world_videos < 0:
            raise ValueError(f"eval.classifier_world_videos must be >= 0, got {self.classifier_world_videos}")
        if self.kid_subsets < 1 or self.kid_subset_size < 2:
            raise ValueError("eval.kid_subsets must be >= 1 and eval.kid_subset_size >= 2")
        for name in ("sampler", "generate_sampler"):
            if getattr(self, name) not in ("ddpm", "ddim"):
                raise ValueError(f"eval.{name} must be ddpm or ddim, got {getattr(self, name)!r}")
        if self.sample_steps < 0 or self.generate_steps < 0 or self.eta < 0 or self.generate_eta < 0:
            raise ValueError("eval.sample_steps, generate_steps, eta and generate_eta must be >= 0")
        if any(s < 1 for s in self.ddim_steps):
            raise ValueError(f"eval.ddim_steps must be positive, got {self.ddim_steps}")
