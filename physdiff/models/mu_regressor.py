"""Fig. 5b's fourth bar: a physics latent *predicted* from video, nu -> mu, as the diffusion condition.

The paper's model retrieves mu from the training clip with the nearest nu (Sec. 3.4). This ablation
replaces retrieval with regression: an MLP from nu to the mu that the trained diffusion model's physics
encoder computed for the same clip (its export ``diffusion-<split>.safetensors``, array ``mu``). At test
time its prediction takes the retrieved mu's place in c = [mu, nu']. The paper reports this is poor (an
L2-trained regressor predicts the conditional mean, a blur of the materials' latents); the FID of its
samples is what Fig. 5b shows.

    reg = MuRegressor.from_config(cfg.mu_regressor, nu_dim=2048, mu_dim=cfg.diffusion.latent_dim)
    loss = reg.loss(mu, nu)                      # MSE (or L1) to the encoder's mu
    mu_hat = reg.predict(nu_test)                # (B, latent_dim) in (-1, 1)
    # then: c = assemble_condition(diffusion, nu_test, mu_hat); sample_spectrograms(diffusion, c)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class MuRegressor(nn.Module):
    """LayerNorm(nu) -> [Linear -> GELU -> Dropout] x layers -> Linear -> tanh: (B, D_nu) -> (B, D_mu)."""

    def __init__(self, *, nu_dim: int, mu_dim: int, hidden: int = 512, layers: int = 3, dropout: float = 0.1,
                 loss_kind: str = "mse") -> None:
        super().__init__()
        if loss_kind not in ("mse", "l1"):
            raise ValueError(f"loss_kind must be mse or l1, got {loss_kind!r}")
        self.loss_kind = loss_kind
        mods: list[nn.Module] = [nn.LayerNorm(nu_dim)]
        width = nu_dim
        for _ in range(layers):
            mods += [nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout)]
            width = hidden
        mods.append(nn.Linear(width, mu_dim))
        self.net = nn.Sequential(*mods)
        self.mu_dim = mu_dim

    @classmethod
    def from_config(cls, section: Any, *, nu_dim: int, mu_dim: int) -> "MuRegressor":
        """From a :class:`~physdiff.models.baselines_config.MuRegressorConfig`; mu_dim = ``diffusion.latent_dim``."""
        return cls(nu_dim=nu_dim, mu_dim=mu_dim, hidden=section.hidden, layers=section.layers, dropout=section.dropout,
                   loss_kind=section.loss)

    def forward(self, nu: Tensor) -> Tensor:
        """(B, D_nu) -> (B, D_mu) in (-1, 1), the range of the physics encoder's tanh output."""
        if nu.dim() != 2:
            raise ValueError(f"nu must be (B, D), got {tuple(nu.shape)}")
        return torch.tanh(self.net(nu.float()))  # (B, D_mu)

    def loss(self, mu: Tensor, nu: Tensor, reduction: str = "mean") -> Tensor:
        """MSE (or L1) between the prediction from nu (B, D_nu) and the target mu (B, D_mu); (B,) if ``"none"``."""
        pred = self(nu)  # (B, D_mu)
        if pred.shape != mu.shape:
            raise ValueError(f"predicted mu {tuple(pred.shape)} vs target {tuple(mu.shape)}")
        diff = pred - mu.float()
        per_clip = (diff.square() if self.loss_kind == "mse" else diff.abs()).mean(1)  # (B,)
        return per_clip if reduction == "none" else per_clip.mean()

    @torch.no_grad()
    def predict(self, nu: Tensor) -> Tensor:
        """mu_hat (B, D_mu): the condition that replaces the retrieved mu."""
        return self(nu)
