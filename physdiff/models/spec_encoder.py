"""Spectrogram latent for the "video + spectrogram latent" baseline (paper Table 1).

Instead of the physics latent mu, the condition carries a latent of the clip's own spectrogram: a small
transformer encoder over the spectrogram's time frames (each frame's F bins linearly embedded, learned
positions, pre-norm layers), mean-pooled and projected. Same shape of design as the prior stage's encoder.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class SpectrogramEncoder(nn.Module):
    """(B, 1, F, N) normalised log-magnitude spectrogram -> (B, latent_dim)."""

    def __init__(self, num_bins: int, num_frames: int, *, dim: int = 256, layers: int = 4, heads: int = 4,
                 latent_dim: int = 256, dropout: float = 0.1) -> None:
        super().__init__()
        self.num_bins, self.num_frames = num_bins, num_frames
        self.embed = nn.Linear(num_bins, dim)
        self.pos = nn.Parameter(torch.zeros(1, num_frames, dim))
        nn.init.normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout, activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, latent_dim)

    def forward(self, spec: Tensor) -> Tensor:
        if spec.shape[-2:] != (self.num_bins, self.num_frames):
            raise ValueError(f"spectrogram encoder expects (.., {self.num_bins}, {self.num_frames}), got {tuple(spec.shape)}")
        x = spec.reshape(spec.shape[0], self.num_bins, self.num_frames).transpose(1, 2).float()  # (B, N, F)
        h = self.embed(x) + self.pos  # (B, N, d)
        h = self.norm(self.encoder(h)).mean(1)  # (B, d)
        return torch.tanh(self.out(h))  # (B, latent)
