"""The condition vector c of the denoiser, for the paper's model and its baselines (Table 1).

Variants (``DiffusionConfig.variant``):
  "ours"         c = [mu, nu']   mu = PhysicsEncoder(normalised priors), nu' = visual projection of nu
  "video"        c = [nu']       video-only baseline
  "video_label"  c = [nu', e(y)] plus a learned embedding of the material class
  "video_spec"   c = [nu', s]    plus a transformer latent of the spectrogram (instead of physics)

nu' is LayerNorm + Linear of the pooled ResNet features (``visual_input = "features"``) or the raw 17 logits
(``"logits"``, the official code's choice).

Classifier-free guidance (Ho & Salimans, 2022): with probability ``cond_dropout`` per sample in training,
the whole c is replaced by a learned null vector, so the same network learns eps(x, null) and samplers can
mix the two. Inputs are a mapping with these keys (as the diffusion stage's batches carry them):

  "freq", "power", "decay" (B, D)  modal priors in Hz, dB, dB/s     (variant "ours")
  "res_weight", "res_decay" (B, M) residual priors, weight and dB/s (variant "ours")
  "nu" (B, D_nu)  pooled visual features; or "logits" (B, 17)       (every variant)
  "label" (B,) long class index into GREATEST_HITS_MATERIALS       ("video_label")
  "spec" (B, 1, F, N) normalised log-magnitude spectrogram          ("video_spec")
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor, nn

from physdiff.data.labels import GREATEST_HITS_MATERIALS
from physdiff.models.physics_encoder import PhysicsEncoder, PriorNorm, normalize_priors
from physdiff.models.spec_encoder import SpectrogramEncoder


class Conditioner(nn.Module):
    """Mapping of raw inputs -> c (B, cond_dim); ``drop_prob`` > 0 swaps in the learned null condition."""

    def __init__(self, variant: str, *, nu_dim: int, prior_norm: PriorNorm | None = None, num_bins: int = 1025,
                 num_frames: int = 44, num_bands: int = 100, visual_input: str = "features", visual_dim: int = 256,
                 physics_hidden: int = 512, physics_mode_dim: int = 64, physics_res_dim: int = 32,
                 physics_res_hidden: int = 64, physics_res_depth: int = 2, latent_dim: int = 256, label_dim: int = 64, num_classes: int = len(GREATEST_HITS_MATERIALS),
                 spec_dim: int = 256, spec_layers: int = 4, spec_heads: int = 4, spec_latent_dim: int = 256) -> None:
        super().__init__()
        self.variant, self.visual_input = variant, visual_input
        self.prior_norm = prior_norm or PriorNorm()
        if visual_input == "features":
            self.visual = nn.Sequential(nn.LayerNorm(nu_dim), nn.Linear(nu_dim, visual_dim))
            dim = visual_dim
        elif visual_input == "logits":
            self.visual = nn.Identity()
            dim = num_classes
        else:
            raise ValueError(f"unknown visual_input {visual_input!r}")
        self.physics = self.label = self.spec = None
        if variant == "ours":
            self.physics = PhysicsEncoder(num_bins, num_bands, hidden=physics_hidden, mode_dim=physics_mode_dim,
                                          res_dim=physics_res_dim, latent_dim=latent_dim,
                                          res_hidden=physics_res_hidden, res_depth=physics_res_depth)
            dim += latent_dim
        elif variant == "video_label":
            self.label = nn.Embedding(num_classes, label_dim)
            dim += label_dim
        elif variant == "video_spec":
            self.spec = SpectrogramEncoder(num_bins, num_frames, dim=spec_dim, layers=spec_layers, heads=spec_heads,
                                           latent_dim=spec_latent_dim)
            dim += spec_latent_dim
        elif variant != "video":
            raise ValueError(f"unknown conditioning variant {variant!r}")
        self.cond_dim = dim
        # The learned null condition; small init so that early guided and unguided outputs are alike.
        self.null = nn.Parameter(torch.randn(dim) * 0.02)

    @classmethod
    def from_config(cls, cfg: object, nu_dim: int) -> "Conditioner":
        """From a root ``Config`` (diffusion, audio, physics, prior sections)."""
        d = cfg.diffusion  # type: ignore[attr-defined]
        return cls(d.variant, nu_dim=nu_dim, prior_norm=PriorNorm.from_config(cfg),
                   num_bins=cfg.audio.num_bins, num_frames=cfg.audio.num_frames,  # type: ignore[attr-defined]
                   num_bands=cfg.prior.residual_dims, visual_input=d.visual_input,  # type: ignore[attr-defined]
                   visual_dim=d.visual_dim, physics_hidden=d.physics_hidden, physics_mode_dim=d.physics_mode_dim,
                   physics_res_dim=d.physics_res_dim, physics_res_hidden=d.physics_res_hidden,
                   physics_res_depth=d.physics_res_depth, latent_dim=d.latent_dim, label_dim=d.label_dim,
                   spec_dim=d.spec_dim, spec_layers=d.spec_layers, spec_heads=d.spec_heads,
                   spec_latent_dim=d.spec_latent_dim)

    @staticmethod
    def _need(inputs: Mapping[str, Tensor], key: str, why: str) -> Tensor:
        if key not in inputs:
            raise KeyError(f"condition input '{key}' missing ({why}); got keys {sorted(inputs)}")
        return inputs[key]

    def encode(self, inputs: Mapping[str, Tensor]) -> Tensor:
        """The full condition (no dropout): (B, cond_dim)."""
        key = "nu" if self.visual_input == "features" else "logits"
        parts = [self.visual(self._need(inputs, key, f"visual_input={self.visual_input}").float())]  # (B, dv)
        if self.physics is not None:
            raw = [self._need(inputs, k, "variant 'ours'").float() for k in ("freq", "power", "decay", "res_weight", "res_decay")]
            parts.insert(0, self.physics(normalize_priors(*raw, self.prior_norm)))  # mu (B, latent) first
        if self.label is not None:
            parts.append(self.label(self._need(inputs, "label", "variant 'video_label'").long()))  # (B, dl)
        if self.spec is not None:
            parts.append(self.spec(self._need(inputs, "spec", "variant 'video_spec'")))  # (B, ds)
        return torch.cat(parts, dim=-1)  # (B, cond_dim)

    def null_condition(self, batch: int) -> Tensor:
        """The learned null condition for ``batch`` samples: (B, cond_dim)."""
        return self.null[None].expand(batch, -1)

    def forward(self, inputs: Mapping[str, Tensor], drop_prob: float = 0.0,
                generator: torch.Generator | None = None) -> Tensor:
        """c (B, cond_dim); each sample's c is the null condition with probability ``drop_prob``."""
        c = self.encode(inputs)  # (B, C)
        if drop_prob <= 0.0 and not self.training:
            return c
        # In training the null vector always enters the graph (zero gradient when nothing is dropped), so DDP
        # never sees it as an unused parameter.
        gen_device = generator.device if generator is not None else c.device
        drop = (torch.rand(c.shape[0], generator=generator, device=gen_device) < drop_prob).to(c.device)  # (B,)
        return torch.where(drop[:, None], self.null_condition(c.shape[0]).to(c.dtype), c)
