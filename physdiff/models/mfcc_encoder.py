"""MFCC latent for the "Video + MFCC" baseline (paper Table 1).

Instead of the physics latent mu, the diffusion condition carries a latent of the clip's own MFCCs,
retrieved by nu at test time exactly as the ``video_spec`` variant's spectrogram latent is:

  audio (B, T) --peak-normalise--> torchaudio MFCC (B, n_mfcc, N) --x scale--> frames (B, N, n_mfcc)
  --Linear + learned positions--> pre-norm transformer encoder --LayerNorm, mean over frames--> Linear --tanh--> (B, L)

The MFCCs are torchaudio's (mel power spectrogram -> dB with an 80 dB range -> orthonormal DCT-II) on the
project's STFT grid (n_fft, hop, periodic Hann, centred frames with zero padding: N = 44 in ``paper``, the
same frames as the spectrogram). The encoder is shaped like the physics prior's
(:class:`physdiff.models.prior.ResidualPrior`) and the spectrogram latent's
(:class:`physdiff.models.spec_encoder.SpectrogramEncoder`).

    enc = MFCCEncoder.from_config(cfg.mfcc, cfg.audio)
    m = enc(audio)                     # (B, latent_dim) in (-1, 1)
    feats = enc.features(audio)        # (B, n_mfcc, N), the MFCCs it reads (unscaled)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from physdiff.physics.spectral import as_batch, peak_normalize


def mfcc_transform(sample_rate: int, n_fft: int, hop_length: int, n_mfcc: int = 40, n_mels: int = 128,
                   f_min: float = 0.0) -> nn.Module:
    """torchaudio's MFCC on this project's STFT conventions (periodic Hann, centred, zero-padded edges)."""
    import torchaudio

    return torchaudio.transforms.MFCC(
        sample_rate=sample_rate, n_mfcc=n_mfcc, dct_type=2, norm="ortho", log_mels=False,
        melkwargs={"n_fft": n_fft, "hop_length": hop_length, "n_mels": n_mels, "f_min": f_min,
                   "f_max": sample_rate / 2.0, "center": True, "pad_mode": "constant", "power": 2.0},
    )


class MFCCEncoder(nn.Module):
    """(B, T) audio -> (B, latent_dim) MFCC latent; :meth:`encode_mfcc` takes precomputed (B, n_mfcc, N) MFCCs."""

    def __init__(self, *, sample_rate: int, n_fft: int, hop_length: int, num_frames: int, n_mfcc: int = 40,
                 n_mels: int = 128, f_min: float = 0.0, scale: float = 0.01, dim: int = 256, layers: int = 4,
                 heads: int = 4, dropout: float = 0.1, latent_dim: int = 256) -> None:
        super().__init__()
        self.num_frames, self.n_mfcc, self.scale, self.latent_dim = num_frames, n_mfcc, scale, latent_dim
        # Constant buffers (mel filterbank, DCT matrix, window): part of the state dict like any torchaudio transform.
        self.mfcc = mfcc_transform(sample_rate, n_fft, hop_length, n_mfcc, n_mels, f_min)
        self.embed = nn.Linear(n_mfcc, dim)
        self.pos = nn.Parameter(torch.randn(1, num_frames, dim) * 0.02)
        self.drop = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout, activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, latent_dim)

    @classmethod
    def from_config(cls, section: Any, audio: Any) -> "MFCCEncoder":
        """From an :class:`~physdiff.models.baselines_config.MFCCConfig` and the ``audio`` section."""
        s = section
        return cls(sample_rate=audio.sample_rate, n_fft=audio.n_fft, hop_length=audio.hop_length,
                   num_frames=audio.num_frames, n_mfcc=s.n_mfcc, n_mels=s.n_mels, f_min=s.f_min, scale=s.scale,
                   dim=s.dim, layers=s.layers, heads=s.heads, dropout=s.dropout, latent_dim=s.latent_dim)

    def features(self, audio: Tensor) -> Tensor:
        """MFCCs of the peak-normalised clips: (B, T) -> (B, n_mfcc, N), in float32 (also under autocast)."""
        audio = as_batch(audio)
        with torch.autocast(audio.device.type, enabled=False):
            # (B, 1, T): torchaudio's AmplitudeToDB applies its 80 dB floor per item of the dimension before
            # (mels, frames); on (B, T) that is the whole batch, so a clip's MFCCs would depend on its batch-mates
            return self.mfcc(peak_normalize(audio.float())[:, None])[:, 0]  # (B, n_mfcc, N)

    def encode_mfcc(self, mfcc: Tensor) -> Tensor:
        """(B, n_mfcc, N) MFCCs -> (B, latent_dim)."""
        if mfcc.dim() != 3 or mfcc.shape[1] != self.n_mfcc or mfcc.shape[2] > self.num_frames:
            raise ValueError(f"MFCC encoder expects (B, {self.n_mfcc}, <= {self.num_frames}), got {tuple(mfcc.shape)}")
        n = mfcc.shape[2]
        x = mfcc.transpose(1, 2).float() * self.scale  # (B, N, n_mfcc)
        h = self.drop(self.embed(x) + self.pos[:, :n])  # (B, N, d)
        h = self.norm(self.encoder(h)).mean(1)  # (B, d)
        return torch.tanh(self.out(h))  # (B, L)

    def forward(self, audio: Tensor) -> Tensor:
        """(B, T) audio -> (B, latent_dim) in (-1, 1)."""
        return self.encode_mfcc(self.features(audio))
