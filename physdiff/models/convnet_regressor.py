"""ConvNet-based baseline (paper Table 1): video features -> U-Net -> spectrogram, regressed directly (no diffusion).

The paper's description: the video features, upsampled in time to the spectrogram's frame count, go
through a U-Net that regresses the spectrogram with an L1 loss. Here:

  per-frame features (B, T, D) --LayerNorm+Linear--> (B, T, dv) --interpolate in time--> (B, N, dv)
  --Linear(dv -> F) per frame--> a one-channel image (B, 1, F, N) --U-Net--> x_hat (B, 1, F, N)

The U-Net is the denoiser's (:class:`physdiff.models.unet.UNet`) with its diffusion-step input fixed at 0;
its condition path (FiLM in every residual block) carries the time-averaged projected feature, so the
global material cue reaches every scale while the image input carries the per-frame timing. The target
is the diffusion model's x_0 (:func:`physdiff.physics.spectrogram_target`), in [-1, 1].

    model = ConvNetRegressor.from_config(cfg.convnet, cfg.audio, nu_dim=2048)
    loss = model.loss(x0, {"nu_frames": nu_frames})       # L1; or {"nu": nu} broadcast over time
    x_hat = model.predict({"nu_frames": nu_frames})       # (B, 1, F, N), clamped to [-1, 1]
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor, nn

from physdiff.models.frame_features import frame_sequence, upsample_time
from physdiff.models.unet import UNet


def regression_loss(pred: Tensor, target: Tensor, kind: str = "l1", reduction: str = "mean") -> Tensor:
    """Mean absolute (``l1``) or squared (``l2``) error; ``reduction="none"`` gives one value per clip (B,)."""
    if pred.shape != target.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
    if kind not in ("l1", "l2"):
        raise ValueError(f"loss kind must be l1 or l2, got {kind!r}")
    diff = pred.float() - target.float()
    err = diff.abs() if kind == "l1" else diff.square()
    per_clip = err.flatten(1).mean(1)  # (B,)
    return per_clip if reduction == "none" else per_clip.mean()


class ConvNetRegressor(nn.Module):
    """(B, T, D) per-frame video features (or (B, D) nu) -> (B, 1, F, N) normalised log-magnitude spectrogram."""

    def __init__(self, *, nu_dim: int, num_bins: int, num_frames: int, video_frames: int = 22, visual_dim: int = 256,
                 upsample: str = "linear", loss_kind: str = "l1", unet: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.num_bins, self.num_frames, self.video_frames = num_bins, num_frames, video_frames
        self.upsample, self.loss_kind = upsample, loss_kind
        self.visual = nn.Sequential(nn.LayerNorm(nu_dim), nn.Linear(nu_dim, visual_dim))
        self.to_image = nn.Linear(visual_dim, num_bins)  # each upsampled frame feature -> one spectrogram column
        opts = dict(unet or {})
        freq_input = opts.pop("freq_input", False)
        self.unet = UNet(in_channels=1, cond_dim=visual_dim, freq_bins=num_bins if freq_input else 0, **opts)

    @classmethod
    def from_config(cls, section: Any, audio: Any, *, nu_dim: int, video_frames: int = 22) -> "ConvNetRegressor":
        """From a :class:`~physdiff.models.baselines_config.ConvNetConfig` and the ``audio`` section (F, N)."""
        s = section
        model = cls(nu_dim=nu_dim, num_bins=audio.num_bins, num_frames=audio.num_frames, video_frames=video_frames,
                    visual_dim=s.visual_dim, upsample=s.upsample, loss_kind=s.loss,
                    unet=dict(width=s.width, channel_mults=s.channel_mults, blocks_per_level=s.blocks_per_level,
                              attn_levels=s.attn_levels, mid_attention=s.mid_attention, heads=s.attn_heads,
                              dim_head=s.attn_dim_head, groups=s.norm_groups, freq_input=s.freq_input))
        if s.channels_last:
            model.unet.to(memory_format=torch.channels_last)
        return model

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        """The raw regression (B, 1, F, N), unclamped (the loss sees it as is)."""
        seq = frame_sequence(inputs.get("nu_frames"), inputs.get("nu"), self.video_frames)  # (B, T, D)
        v = self.visual(seq)  # (B, T, dv)
        cond = v.mean(1)  # (B, dv): the global cue for FiLM
        cols = self.to_image(upsample_time(v, self.num_frames, self.upsample))  # (B, N, F)
        img = cols.transpose(1, 2).unsqueeze(1)  # (B, 1, F, N)
        if next(self.unet.parameters()).is_contiguous(memory_format=torch.channels_last):
            img = img.contiguous(memory_format=torch.channels_last)
        t = torch.zeros(img.shape[0], device=img.device, dtype=torch.long)  # no diffusion: the step input is constant
        return self.unet(img, t, cond)  # (B, 1, F, N)

    def loss(self, x0: Tensor, inputs: Mapping[str, Tensor], reduction: str = "mean") -> Tensor:
        """L1 (or L2) between the regression and the target spectrogram x0 (B, 1, F, N)."""
        return regression_loss(self(inputs), x0, self.loss_kind, reduction)

    @torch.no_grad()
    def predict(self, inputs: Mapping[str, Tensor]) -> Tensor:
        """The generated spectrogram (B, 1, F, N) in [-1, 1], the same range as the diffusion samples."""
        return self(inputs).clamp(-1.0, 1.0)
