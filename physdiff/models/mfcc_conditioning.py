"""The ``video_mfcc`` conditioning variant: c = [nu', m], a sibling of ``video_spec`` (paper Table 1, "Video + MFCC").

:class:`MFCCConditioner` is the "video" :class:`~physdiff.models.conditioning.Conditioner` (nu' =
LayerNorm + Linear of nu, or the raw logits) plus an :class:`~physdiff.models.mfcc_encoder.MFCCEncoder`
latent m of the clip's recording, with a learned null condition of the wider width (classifier-free
guidance dropout works as for every variant). In training m comes from the clip's audio; at test time no
sound exists, so m is retrieved by nu from the training clips (the index stage), exactly as ``video_spec``'s
spectrogram latent. Inputs: ``"nu"`` (B, D_nu) (or ``"logits"``) and ``"audio"`` (B, T) -- or ``"mfcc"``
(B, n_mfcc, N) precomputed.

    cond = build_conditioner(cfg, nu_dim)                  # MFCCConditioner when diffusion.variant == "video_mfcc"
    c = cond(inputs, drop_prob=0.1)                        # training: (B, cond_dim)
    m = cond.latent(inputs)                                # (B, L): what the index stores per training clip
    c_test = cond.assemble(nu_test, m_retrieved)           # (B, cond_dim): [nu', m] for sampling
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor, nn

from physdiff.data.labels import GREATEST_HITS_MATERIALS
from physdiff.models.conditioning import Conditioner
from physdiff.models.mfcc_encoder import MFCCEncoder

VARIANT = "video_mfcc"
LATENT_NAME = "mfcc_latent"


class MFCCConditioner(Conditioner):
    """c = [nu', m] (B, visual_dim + latent_dim); m = MFCCEncoder(audio)."""

    def __init__(self, mfcc: MFCCEncoder, *, nu_dim: int, visual_input: str = "features", visual_dim: int = 256,
                 num_classes: int = len(GREATEST_HITS_MATERIALS)) -> None:
        super().__init__("video", nu_dim=nu_dim, visual_input=visual_input, visual_dim=visual_dim, num_classes=num_classes)
        self.variant = VARIANT
        self.mfcc = mfcc
        self.cond_dim += mfcc.latent_dim
        self.null = nn.Parameter(torch.randn(self.cond_dim) * 0.02)  # the null condition at the full width

    @classmethod
    def from_config(cls, cfg: Any, nu_dim: int, mfcc: Any = None) -> "MFCCConditioner":  # type: ignore[override]
        """From a root config (``diffusion``, ``audio``; ``mfcc`` unless the section is passed)."""
        section = mfcc if mfcc is not None else cfg.mfcc
        d = cfg.diffusion
        return cls(MFCCEncoder.from_config(section, cfg.audio), nu_dim=nu_dim, visual_input=d.visual_input,
                   visual_dim=d.visual_dim)

    def latent(self, inputs: Mapping[str, Tensor]) -> Tensor:
        """The MFCC latent m (B, L) from ``"mfcc"`` (B, n_mfcc, N) when given, else from ``"audio"`` (B, T)."""
        if "mfcc" in inputs:
            return self.mfcc.encode_mfcc(inputs["mfcc"])
        return self.mfcc(self._need(inputs, "audio", f"variant '{VARIANT}'"))  # (B, L)

    def encode(self, inputs: Mapping[str, Tensor]) -> Tensor:
        """The full condition (no dropout): [nu', m] (B, cond_dim)."""
        return torch.cat([super().encode(inputs), self.latent(inputs)], dim=-1)  # (B, C)

    def assemble(self, visual: Tensor, latent: Tensor) -> Tensor:
        """c from a visual input (nu, or logits) and a (retrieved) latent, in :meth:`encode`'s order: (B, C)."""
        return torch.cat([self.visual(visual.float()), latent.float()], dim=-1)  # (B, C)


def build_conditioner(cfg: Any, nu_dim: int, mfcc: Any = None) -> Conditioner:
    """The conditioner of ``cfg.diffusion.variant``: :class:`MFCCConditioner` for "video_mfcc", else the existing one."""
    if cfg.diffusion.variant == VARIANT:
        return MFCCConditioner.from_config(cfg, nu_dim, mfcc)
    return Conditioner.from_config(cfg, nu_dim)
