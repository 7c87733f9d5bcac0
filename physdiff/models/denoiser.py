"""The physics-driven denoiser: conditioner (mu, nu, ablations) + U-Net, with its loss.

Single-device code (torchtitan style): the training stage wraps it for DDP. Typical use:

    model = PhysicsDiffusion.from_config(cfg, nu_dim=video_feature_dim(cfg.video))
    loss = model(x0, inputs, generator=g)                            # eq. 8, condition dropped w.p. cond_dropout
    x0_hat = sample_spectrograms(model, model.conditioner.encode(inputs), cfg.sampling)   # physdiff.inference.sampling
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor, nn

from physdiff.diffusion.losses import PREDICTIONS, noise_prediction_loss
from physdiff.diffusion.schedule import Schedule, eps_from_v, schedule_from_config
from physdiff.models.conditioning import Conditioner
from physdiff.models.mfcc_conditioning import build_conditioner
from physdiff.models.unet import UNet, unet_from_config


class PhysicsDiffusion(nn.Module):
    """eps_theta(x_t, t, c(inputs)) for (B, 1, F, N) spectrograms; holds the schedule as float64 buffers.

    The U-Net predicts the noise (``prediction="eps"``, the paper) or the velocity v (``"v"``); either
    way :meth:`eps` is the noise estimate the samplers consume, so samplers never see the difference.
    """

    def __init__(self, conditioner: Conditioner, unet: UNet, schedule: Schedule, *, cond_dropout: float = 0.1,
                 loss_kind: str = "l1", spec_shape: tuple[int, int] = (1025, 44), prediction: str = "eps") -> None:
        super().__init__()
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        self.conditioner, self.unet = conditioner, unet
        self.cond_dropout, self.loss_kind, self.prediction = cond_dropout, loss_kind, prediction
        self.spec_shape = tuple(spec_shape)
        self.schedule = schedule

    @classmethod
    def from_config(cls, cfg: object, nu_dim: int) -> "PhysicsDiffusion":
        d = cfg.diffusion  # type: ignore[attr-defined]
        cond = build_conditioner(cfg, nu_dim)  # the variant's conditioner (video_mfcc: MFCCConditioner)
        model = cls(cond, unet_from_config(d, cond.cond_dim, cfg.audio.num_bins), schedule_from_config(d),  # type: ignore[attr-defined]
                    cond_dropout=d.cond_dropout,
                    loss_kind=d.loss, spec_shape=(cfg.audio.num_bins, cfg.audio.num_frames),  # type: ignore[attr-defined]
                    prediction=d.prediction)
        if d.channels_last:
            model.unet.to(memory_format=torch.channels_last)
        return model

    def _apply(self, fn, recurse: bool = True):  # keep the float64 schedule on the module's device
        out = super()._apply(fn, recurse)
        w = next(self.unet.parameters())
        self.schedule = self.schedule.to(w.device)
        return out

    def predict(self, x_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        """The U-Net's raw output (eps or v), the model_fn of the loss: (B, 1, F, N), (B,), (B, C) -> (B, 1, F, N)."""
        if next(self.unet.parameters()).is_contiguous(memory_format=torch.channels_last):
            x_t = x_t.contiguous(memory_format=torch.channels_last)
        return self.unet(x_t, t, cond)

    def eps(self, x_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        """The noise estimate, the model_fn of the samplers: (B, 1, F, N), (B,), (B, C) -> (B, 1, F, N)."""
        out = self.predict(x_t, t, cond)  # (B, 1, F, N)
        if self.prediction == "v":
            out = eps_from_v(self.schedule, x_t.float(), t, out.float()).to(out.dtype)
        return out

    def forward(self, x0: Tensor, inputs: Mapping[str, Tensor], *, generator: torch.Generator | None = None,
                drop_prob: float | None = None, reduction: str = "mean") -> Tensor:
        """The training loss, eq. 8, with conditioning dropout: forward is the loss so a DDP wrapper's
        forward (and its gradient hooks) is what the training loop calls. ``drop_prob`` defaults to
        cond_dropout in train mode and 0 in eval mode; ``reduction="none"`` gives one loss per clip (B,).
        """
        if drop_prob is None:
            drop_prob = self.cond_dropout if self.training else 0.0
        cond = self.conditioner(inputs, drop_prob, generator)  # (B, C)
        return noise_prediction_loss(self.predict, x0, cond, self.schedule, generator=generator, kind=self.loss_kind,
                                     reduction=reduction, prediction=self.prediction)

    loss = forward
