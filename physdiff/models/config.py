"""Config sections ``video`` (the visual encoder) and ``diffusion`` (the physics-driven denoiser).

Defaults are the paper / official code (``paper``); ``PRESETS`` hold the deltas of the smaller presets.
``tiny`` is sized so that a diffusion training step at batch 16 over the tiny 257 x 32 spectrogram and
a video step over 22 frames of 64 px run in well under a second on a 2-core CPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from physdiff.configchecks import at_least, positive_finite, rate, stage_overrides
from physdiff.configlib import ConfigError, nonsemantic

VIDEO_BACKBONES = ("resnet50", "resnet18", "resnet_small")
VARIANTS = ("ours", "video", "video_label", "video_spec", "video_mfcc")  # video_mfcc: physdiff/models/mfcc_conditioning.py


@dataclass
class VideoConfig:
    """The visual encoder: a ResNet with temporal shift (TSM) over the clip's frames, pooled to nu."""

    backbone: str = "resnet50"  # "resnet50" | "resnet18" (torchvision) | "resnet_small" (CPU-sized)
    epochs: int = 0  # 0 -> train.epochs
    small_widths: tuple[int, ...] = (16, 32, 64, 128)  # channel widths of "resnet_small"'s four stages
    small_blocks: tuple[int, ...] = (1, 1, 1, 1)  # BasicBlocks per stage of "resnet_small"
    pretrained: str = ""  # local torchvision state-dict path (torch.load(weights_only=True)); "" = random init
    num_frames: int = 22  # onset +- 11 frames
    frame_size: int = 224
    tsm_fold_div: int = 8  # shift 1/8 of channels forward, 1/8 backward
    dropout: float = 0.5  # before the classification head (TSM's default)
    # --- the video stage (physdiff/stages/video.py): classifier training and its augmentation, drawn once
    # per clip and applied identically to all its frames (physdiff/data/augment.py); none at evaluation.
    label_smoothing: float = 0.0
    crop_scale: tuple[float, float] = (0.35, 1.0)  # random resized crop: area fraction of the frame
    crop_ratio: tuple[float, float] = (0.75, 1.3333333)  # ... and aspect ratio range
    flip: bool = True  # random horizontal flip (p = 0.5)
    brightness: float = 0.3  # colour jitter: factors in [1 - x, 1 + x]
    contrast: float = 0.3
    saturation: float = 0.3
    hue: float = 0.0  # hue shift in turns, [-x, x]; 0 by default: colour is a material cue
    channels_last: bool = nonsemantic(True)  # NHWC convolutions (faster on CPUs and tensor cores)

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "tiny": {"backbone": "resnet_small", "frame_size": 64, "epochs": 20},
        "debug": {"frame_size": 32, "small_widths": (8, 16, 32, 64), "epochs": 0},
    }

    def validate(self) -> None:
        if self.backbone not in VIDEO_BACKBONES:
            raise ConfigError(f"video.backbone '{self.backbone}' unknown; choose one of {', '.join(VIDEO_BACKBONES)}")
        if len(self.small_widths) != 4 or len(self.small_blocks) != 4:
            raise ConfigError("video.small_widths and video.small_blocks need 4 entries (one per ResNet stage)")
        if self.tsm_fold_div < 2:
            raise ConfigError(f"video.tsm_fold_div must be >= 2 (shifts 2/fold_div of the channels), got {self.tsm_fold_div}")
        lo, hi = self.crop_scale
        if not 0.0 < lo <= hi <= 1.0:
            raise ConfigError(f"video.crop_scale must satisfy 0 < min <= max <= 1, got {self.crop_scale}")
        if not 0.0 < self.crop_ratio[0] <= self.crop_ratio[1]:
            raise ConfigError(f"video.crop_ratio must satisfy 0 < min <= max, got {self.crop_ratio}")
        for name in ("brightness", "contrast", "saturation"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"video.{name} must be in [0, 1), got {getattr(self, name)}")
        if not 0.0 <= self.hue <= 0.5:
            raise ConfigError(f"video.hue must be in [0, 0.5], got {self.hue}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"video.label_smoothing must be in [0, 1), got {self.label_smoothing}")
        stage_overrides("video", self)
        rate("video", self, "dropout")
        at_least("video", self, 1, "num_frames", "frame_size")


@dataclass
class DiffusionConfig:
    """The denoiser (U-Net), its conditioning (mu, nu, ablations) and the DDPM schedule (sampling: the ``sampling`` section)."""

    epochs: int = 0  # 0 -> train.epochs
    lr: float = 0.0  # peak learning rate of the diffusion stage; 0 -> train.lr
    # --- conditioning (paper Sec. 3.3 and the baselines of Table 1)
    # "ours" (mu + nu) | "video" (nu) | "video_label" (nu + class) | "video_spec" (nu + spec latent)
    # | "video_mfcc" (nu + MFCC latent, the ``mfcc`` section)
    variant: str = "ours"
    cond_dropout: float = 0.1  # probability of the learned null condition in training (classifier-free guidance)
    # physics encoder: five MLPs (f, p, lambda: D -> hidden^3 -> mode_dim; w, gamma: M -> res_hidden^res_depth -> res_dim;
    # official ParamsNet: 1025 -> 512^3 -> 64 and 100 -> 64^2 -> 32)
    physics_hidden: int = 512
    physics_mode_dim: int = 64
    physics_res_dim: int = 32
    physics_res_hidden: int = 64
    physics_res_depth: int = 2
    latent_dim: int = 256  # physics latent mu
    # visual latent nu: "features" = the pooled ResNet features (2048-d for resnet50), projected to visual_dim;
    # "logits" = the classifier's 17 logits as in the official code (used unprojected).
    visual_input: str = "features"
    visual_dim: int = 256
    label_dim: int = 64  # class embedding width of "video_label"
    spec_dim: int = 256  # transformer width of the "video_spec" spectrogram encoder
    spec_layers: int = 4
    spec_heads: int = 4
    spec_latent_dim: int = 256
    # --- U-Net (official: width 64, mults 1/2/4/8, linear attention at every level, 35.3 M parameters)
    # layout: "official" (the official Unet3D, physdiff/models/unet.py: OfficialUNet) | "physdiff" (pad once,
    # channel change in the resampling convs, a skip per block; tiny / debug)
    unet_layout: str = "official"
    width: int = 64
    channel_mults: tuple[int, ...] = (1, 2, 4, 8)
    blocks_per_level: int = 2
    attn_levels: tuple[int, ...] = (0, 1, 2, 3)  # levels (0 = full resolution) with linear attention
    mid_attention: str = "none"  # bottleneck attention: "full" | "linear" | "none" (official: none)
    attn_heads: int = 8  # official: 8 heads of 32
    attn_dim_head: int = 32
    norm_groups: int = 8
    # frequency-aware input: + a bin-coordinate channel and a condition-written spectral envelope channel, so FiLM
    # conditioning can place energy at absolute frequencies (physdiff/models/unet.py; docs/deviations.md)
    freq_input: bool = False
    # --- DDPM (official: cosine schedule s = 0.008, betas clipped at 0.9999, T = 1000, L1 on the noise)
    timesteps: int = 1000
    schedule: str = "cosine"
    cosine_s: float = 0.008
    max_beta: float = 0.9999
    loss: str = "l1"  # "l1" (eq. 8, official) | "l2"
    # what the U-Net predicts: "eps" (eq. 8, official) | "v" (Salimans & Ho, 2022: v = sqrt(a) eps - sqrt(1 - a) x0),
    # which learns the high-noise end far faster when training steps are few (docs/deviations.md)
    prediction: str = "eps"
    # --- the diffusion stage (physdiff.stages.diffusion): upstream exports and evaluation during training
    prior_run: str = ""  # run folder of the prior stage whose (w, gamma) export to read; "" = this config's
    video_run: str = ""  # run folder of the video stage whose nu export to read; "" = this config's
    eval_every: int = nonsemantic(0)  # evaluate every N epochs; 0 -> train.eval_every
    eval_t_grid: int = nonsemantic(8)  # held-out denoising loss at this many evenly spaced timesteps
    eval_noise_seed: int = nonsemantic(1234)  # fixed per-clip noise, so the held-out loss compares across evals
    eval_sample_steps: int = nonsemantic(50)  # DDIM steps of the evaluation samples (GT mu and nu)
    # --- speed knobs (do not change results)
    channels_last: bool = nonsemantic(True)
    compile: bool = nonsemantic(False)

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        # 257 x 32 spectrogram: no attention at full resolution, three levels, small physics MLPs.
        "tiny": {
            "epochs": 20,  # the diffusion model needs far more steps than the prior (20 fits the 20-minute main job)
            "lr": 1e-3,  # the prior and video stages keep train.lr; 380 steps reach a lower loss at 1e-3 than at 5e-4
            "prediction": "v",  # a few hundred CPU steps: v learns the high-noise end far faster (docs/deviations.md)
            "freq_input": True,  # lets the small U-Net put modes at the frequencies mu names (docs/deviations.md)
            "eval_every": 5,  # sampling + Griffin-Lim media cost about as much as a few tiny epochs
            "width": 16,
            "channel_mults": (1, 2, 4),
            "blocks_per_level": 1,
            "attn_levels": (2,),
            "mid_attention": "linear",
            "attn_dim_head": 16,
            "unet_layout": "physdiff",  # kept: tiny's U-Net as before the paper fix (docs/deviations.md)
            "attn_heads": 4,  # kept from before the paper fix (official: 8) so tiny's results stay comparable
            "physics_hidden": 128,
            "physics_mode_dim": 32,
            "physics_res_dim": 16,
            "physics_res_hidden": 128,  # kept: tiny's w, gamma MLPs as its mode MLPs (official: 64 x 2)
            "physics_res_depth": 3,
            "latent_dim": 64,
            "visual_dim": 64,
            "label_dim": 32,
            "spec_dim": 64,
            "spec_layers": 2,
            "spec_latent_dim": 64,
            "eval_sample_steps": 25,
        },
        "debug": {"epochs": 0, "width": 8, "channel_mults": (1, 2), "attn_levels": (1,), "physics_hidden": 64,
                  "physics_res_hidden": 64, "timesteps": 100,
                  "eval_sample_steps": 5, "eval_t_grid": 4},
    }

    def validate(self) -> None:
        if self.variant not in VARIANTS:
            raise ConfigError(f"diffusion.variant '{self.variant}' unknown; choose one of {', '.join(VARIANTS)}")
        if not 0.0 <= self.cond_dropout < 1.0:
            raise ConfigError(f"diffusion.cond_dropout must be in [0, 1), got {self.cond_dropout}")
        if self.visual_input not in ("features", "logits"):
            raise ConfigError(f"diffusion.visual_input must be 'features' or 'logits', got '{self.visual_input}'")
        if self.unet_layout not in ("official", "physdiff"):
            raise ConfigError(f"diffusion.unet_layout must be official or physdiff, got '{self.unet_layout}'")
        if self.unet_layout == "official" and self.freq_input:
            raise ConfigError("diffusion.freq_input needs diffusion.unet_layout=physdiff (the official U-Net has one input channel)")
        if self.mid_attention not in ("full", "linear", "none"):
            raise ConfigError(f"diffusion.mid_attention must be full, linear or none, got '{self.mid_attention}'")
        if not self.channel_mults:
            raise ConfigError("diffusion.channel_mults needs at least one level")
        bad = [lv for lv in self.attn_levels if not 0 <= lv < len(self.channel_mults)]
        if bad:
            raise ConfigError(f"diffusion.attn_levels {bad} outside 0..{len(self.channel_mults) - 1}")
        for name in ("width", "physics_hidden", "physics_res_hidden", "physics_res_depth", "attn_heads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"diffusion.{name} must be positive")
        if self.width % self.norm_groups:
            raise ConfigError(f"diffusion.width {self.width} must be a multiple of norm_groups {self.norm_groups}")
        if self.schedule != "cosine":
            raise ConfigError(f"diffusion.schedule '{self.schedule}' unknown; only 'cosine' (the official schedule)")
        if self.prediction not in ("eps", "v"):
            raise ConfigError(f"diffusion.prediction must be eps or v, got '{self.prediction}'")
        if self.loss not in ("l1", "l2"):
            raise ConfigError(f"diffusion.loss must be l1 or l2, got '{self.loss}'")
        stage_overrides("diffusion", self)
        at_least("diffusion", self, 1, "timesteps")
        positive_finite("diffusion", self, "cosine_s")
        rate("diffusion", self, "max_beta", lo=0.0, hi=1.0, hi_open=False)
        if self.max_beta == 0:
            raise ConfigError("diffusion.max_beta must be in (0, 1], got 0")
        if not 1 <= self.eval_sample_steps <= self.timesteps or self.eval_t_grid < 1:
            raise ConfigError(f"diffusion.eval_sample_steps must be in [1, timesteps] and eval_t_grid >= 1, got "
                              f"{self.eval_sample_steps} and {self.eval_t_grid}")
