"""Transformer-based baseline (paper Table 1): a TTS-style encoder-decoder from video frames to spectrogram frames.

The paper's comparison follows the transformer TTS models it cites: an encoder reads the per-frame
video features (in place of text tokens), a decoder predicts the spectrogram frames (in place of mel
frames), regressed with L1 like the ConvNet baseline. Both decoders of the TTS literature are here:

- ``decoder="parallel"`` (default; FastSpeech-style, non-autoregressive): N learned frame queries (one per
  spectrogram frame, so they carry the time position) self-attend and cross-attend to the encoded video
  in one pass. Output length is fixed (N = 44 in ``paper``), so the length regulator / duration model
  of FastSpeech is not needed.
- ``decoder="autoregressive"`` (Transformer-TTS, Li et al. 2019): frame n is predicted from frames < n,
  embedded by a two-layer pre-net with dropout, under a causal mask, with cross-attention to the video;
  trained with teacher forcing, generated frame by frame (N decoder passes) at test time. No stop token:
  the length is fixed.

    model = TTSTransformer.from_config(cfg.tts, cfg.audio, nu_dim=2048)
    loss = model.loss(x0, {"nu_frames": nu_frames})     # (B, 1, F, N) target; L1
    x_hat = model.predict({"nu_frames": nu_frames})     # (B, 1, F, N) in [-1, 1]

Every layer is pre-norm (``norm_first``), as the physics prior's encoder.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor, nn

from physdiff.models.convnet_regressor import regression_loss
from physdiff.models.frame_features import frame_sequence


class TTSTransformer(nn.Module):
    """(B, T, D) per-frame features (or (B, D) nu) -> (B, 1, F, N) spectrogram, parallel or autoregressive."""

    def __init__(self, *, nu_dim: int, num_bins: int, num_frames: int, video_frames: int = 22, d_model: int = 256,
                 heads: int = 4, encoder_layers: int = 4, decoder_layers: int = 4, ff_mult: int = 4,
                 dropout: float = 0.1, decoder: str = "parallel", prenet_dim: int = 256, prenet_dropout: float = 0.5,
                 loss_kind: str = "l1") -> None:
        super().__init__()
        if decoder not in ("parallel", "autoregressive"):
            raise ValueError(f"decoder must be parallel or autoregressive, got {decoder!r}")
        self.num_bins, self.num_frames, self.video_frames = num_bins, num_frames, video_frames
        self.decoder_kind, self.loss_kind = decoder, loss_kind
        self.embed = nn.Sequential(nn.LayerNorm(nu_dim), nn.Linear(nu_dim, d_model))
        self.enc_pos = nn.Parameter(torch.randn(1, video_frames, d_model) * 0.02)
        enc_layer = nn.TransformerEncoderLayer(d_model, heads, ff_mult * d_model, dropout, activation="gelu",
                                               batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(enc_layer, encoder_layers, enable_nested_tensor=False)
        self.enc_norm = nn.LayerNorm(d_model)
        self.dec_pos = nn.Parameter(torch.randn(1, num_frames, d_model) * 0.02)
        dec_layer = nn.TransformerDecoderLayer(d_model, heads, ff_mult * d_model, dropout, activation="gelu",
                                               batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(dec_layer, decoder_layers)
        self.dec_norm = nn.LayerNorm(d_model)
        self.out = nn.Linear(d_model, num_bins)
        self.prenet: nn.Module | None = None
        if decoder == "autoregressive":
            # Transformer-TTS pre-net: the previous frame through two ReLU layers with heavy dropout (kept high so
            # the decoder cannot just copy the previous frame), then a linear map to d_model.
            self.prenet = nn.Sequential(nn.Linear(num_bins, prenet_dim), nn.ReLU(), nn.Dropout(prenet_dropout),
                                        nn.Linear(prenet_dim, prenet_dim), nn.ReLU(), nn.Dropout(prenet_dropout),
                                        nn.Linear(prenet_dim, d_model))
            self.go = nn.Parameter(torch.full((num_bins,), -1.0))  # the "previous frame" of frame 0 (silence)

    @classmethod
    def from_config(cls, section: Any, audio: Any, *, nu_dim: int, video_frames: int = 22) -> "TTSTransformer":
        """From a :class:`~physdiff.models.baselines_config.TTSConfig` and the ``audio`` section (F, N)."""
        s = section
        return cls(nu_dim=nu_dim, num_bins=audio.num_bins, num_frames=audio.num_frames, video_frames=video_frames,
                   d_model=s.d_model, heads=s.heads, encoder_layers=s.encoder_layers, decoder_layers=s.decoder_layers,
                   ff_mult=s.ff_mult, dropout=s.dropout, decoder=s.decoder, prenet_dim=s.prenet_dim,
                   prenet_dropout=s.prenet_dropout, loss_kind=s.loss)

    def encode(self, inputs: Mapping[str, Tensor]) -> Tensor:
        """The encoded video: (B, T, d)."""
        seq = frame_sequence(inputs.get("nu_frames"), inputs.get("nu"), self.video_frames)  # (B, T, D)
        if seq.shape[1] != self.video_frames:
            raise ValueError(f"TTS baseline built for {self.video_frames} video frames, got {seq.shape[1]}")
        h = self.embed(seq) + self.enc_pos  # (B, T, d)
        return self.enc_norm(self.encoder(h))  # (B, T, d)

    def _decode(self, tgt: Tensor, memory: Tensor, causal: bool) -> Tensor:
        """Decoder stack + output head: (B, n, d) queries -> (B, n, F) frames."""
        n = tgt.shape[1]
        mask = nn.Transformer.generate_square_subsequent_mask(n, device=tgt.device, dtype=tgt.dtype) if causal else None
        h = self.decoder(tgt, memory, tgt_mask=mask, tgt_is_causal=causal)  # (B, n, d)
        return self.out(self.dec_norm(h))  # (B, n, F)

    def _previous_frames(self, frames: Tensor) -> Tensor:
        """Teacher forcing input: [go, y_0 .. y_{n-2}] through the pre-net, plus positions. (B, n, F) -> (B, n, d)."""
        b, n = frames.shape[:2]
        prev = torch.cat([self.go.to(frames.dtype).expand(b, 1, -1), frames[:, :-1]], dim=1)  # (B, n, F)
        return self.prenet(prev) + self.dec_pos[:, :n]  # type: ignore[misc]

    def forward(self, inputs: Mapping[str, Tensor], x0: Tensor | None = None) -> Tensor:
        """The raw prediction (B, 1, F, N); the autoregressive decoder needs the target ``x0`` (teacher forcing)."""
        memory = self.encode(inputs)  # (B, T, d)
        b = memory.shape[0]
        if self.prenet is None:
            frames = self._decode(self.dec_pos.expand(b, -1, -1), memory, causal=False)  # (B, N, F)
        else:
            if x0 is None:
                raise ValueError("the autoregressive decoder's forward is teacher-forced: pass x0, or call predict()")
            target = x0.reshape(b, self.num_bins, self.num_frames).transpose(1, 2).float()  # (B, N, F)
            frames = self._decode(self._previous_frames(target), memory, causal=True)  # (B, N, F)
        return frames.transpose(1, 2).unsqueeze(1)  # (B, 1, F, N)

    def loss(self, x0: Tensor, inputs: Mapping[str, Tensor], reduction: str = "mean") -> Tensor:
        """L1 (or L2) against the target spectrogram x0 (B, 1, F, N), teacher-forced when autoregressive."""
        return regression_loss(self(inputs, x0), x0, self.loss_kind, reduction)

    @torch.no_grad()
    def predict(self, inputs: Mapping[str, Tensor]) -> Tensor:
        """The generated spectrogram (B, 1, F, N) in [-1, 1]: one pass, or N autoregressive steps."""
        if self.prenet is None:
            return self(inputs).clamp(-1.0, 1.0)
        memory = self.encode(inputs)  # (B, T, d)
        b = memory.shape[0]
        frames = torch.empty(b, 0, self.num_bins, device=memory.device, dtype=memory.dtype)  # (B, 0, F)
        for n in range(self.num_frames):
            padded = torch.cat([frames, frames.new_zeros(b, 1, self.num_bins)], dim=1)  # (B, n+1, F): last is unused
            nxt = self._decode(self._previous_frames(padded), memory, causal=True)[:, -1:]  # (B, 1, F)
            frames = torch.cat([frames, nxt.clamp(-1.0, 1.0)], dim=1)  # (B, n+1, F)
        return frames.transpose(1, 2).unsqueeze(1)  # (B, 1, F, N)
