"""The residual-parameter prior (paper Sec. 3.2, Fig. 2): log-spectrogram -> (w, gamma) of M noise bands.

A GPT-style transformer encoder over the spectrogram's time frames, as in the official code:
a linear embedding of each frame (F = n_fft/2 + 1 bins -> d_model), learned positions, L
pre-norm layers with H heads, mean pooling over frames, and two linear heads. The official
parametrisation maps the heads to

    w_m     = sigmoid(h_w)                                  (band weight, eq. 6; starts near init_weight)
    T60_m   = t60_min + t60_range * sigmoid(h_T)            seconds (1e-5 + 0.5 * sigmoid)
    gamma_m = 60 / T60_m                                    dB/s (the band's decay in eq. 5)

M = 0 is allowed (modal resynthesis only, the M = 0 point of Fig. 5a): the heads then have no
outputs and the model returns empty (B, 0) tensors.
"""

from __future__ import annotations

import torch
from torch import nn


class ResidualPrior(nn.Module):
    """Transformer encoder over frames -> per-band weight w (B, M) and decay gamma (B, M) in dB/s."""

    def __init__(
        self,
        num_bins: int,
        num_frames: int,
        residual_dims: int = 100,
        d_model: int = 256,
        layers: int = 4,
        heads: int = 4,
        dropout: float = 0.1,
        t60_min: float = 1e-5,
        t60_range: float = 0.5,
        init_weight: float = 0.5,
    ) -> None:
        super().__init__()
        self.num_bins, self.num_frames, self.residual_dims = num_bins, num_frames, residual_dims
        self.t60_min, self.t60_range = t60_min, t60_range
        self.embed = nn.Linear(num_bins, d_model)
        self.pos = nn.Parameter(torch.zeros(1, num_frames, d_model))
        nn.init.normal_(self.pos, std=0.02)
        self.drop = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(
            d_model, heads, dim_feedforward=4 * d_model, dropout=dropout, activation="gelu",
            batch_first=True, norm_first=True,  # GPT-style pre-norm blocks
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.weight_head = nn.Linear(d_model, residual_dims)
        self.t60_head = nn.Linear(d_model, residual_dims)
        if not 0.0 < init_weight < 1.0:
            raise ValueError(f"init_weight must be in (0, 1), got {init_weight}")
        # w = sigmoid(h_w) starts near init_weight: the bias is its logit.
        nn.init.constant_(self.weight_head.bias, float(torch.logit(torch.tensor(init_weight))))

    def encode(self, logmag: torch.Tensor) -> torch.Tensor:
        """``(B, F, N)`` log-magnitude spectrogram -> ``(B, d_model)`` mean-pooled features."""
        if logmag.dim() != 3 or logmag.shape[1] != self.num_bins:
            raise ValueError(f"ResidualPrior expects (B, {self.num_bins}, N) spectrograms, got {tuple(logmag.shape)}")
        n = logmag.shape[2]
        if n > self.num_frames:
            raise ValueError(f"ResidualPrior was built for {self.num_frames} frames, got {n}")
        x = self.embed(logmag.transpose(1, 2))  # (B, N, D)
        x = self.drop(x + self.pos[:, :n])  # (B, N, D)
        x = self.encoder(x)  # (B, N, D)
        return self.norm(x).mean(dim=1)  # (B, D)

    def forward(self, logmag: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, F, N)`` -> ``(weight (B, M) in (0, 1), gamma (B, M) dB/s)``."""
        h = self.encode(logmag)  # (B, D)
        weight = torch.sigmoid(self.weight_head(h))  # (B, M)
        t60 = self.t60_min + self.t60_range * torch.sigmoid(self.t60_head(h))  # (B, M) seconds
        gamma = 60.0 / t60  # (B, M) dB/s
        return weight, gamma
