"""NN via predicted sound features (paper Table 3): Owens et al., "Visually Indicated Sounds", CVPR 2016.

A CNN reads each video frame, an LSTM runs over the frames, and a linear head predicts, per frame,
``samples_per_frame`` (3) samples of the clip's cochleagram (42 compressed subband envelopes at 90 Hz,
:mod:`physdiff.physics.cochleagram`). At test time the training clip whose cochleagram is nearest
(Euclidean, over the whole clip's features) to the prediction is retrieved, and its recording is the output
(Owens et al.'s example-based synthesis).

Frames and sound: the shards hold 22 frames, onset - 11 .. onset + 10 (index 11 is the onset frame), and
the clip's audio starts at the onset and lasts ``audio.clip_seconds`` (0.25 s = S = 23 cochleagram samples
at 89.91 Hz). The LSTM reads all 22 frames (so the approach of the stick is seen before the hit); the
outputs of the ceil(S / 3) = 8 steps from the onset frame on are the prediction, reshaped to (C, S).

Per-frame image (``input``): Owens' "spacetime" image -- the grayscale previous, current and next frame
as three channels (motion) --, or plain ``rgb``; with ``color_context`` the first frame's colour image goes
through the same CNN and its feature is appended to every step. ``input="features"`` skips the CNN and
feeds the video stage's per-frame features (B, T, D) to the LSTM (a cheaper variant).

Loss: Owens' robust loss, log(eps + |s_t - s_hat_t|^2) averaged over the S time samples, or squared error.

    net = OwensSoundNet.from_config(cfg.owens, cfg.audio, num_frames=22)
    target = net.sound_features(audio)                  # (B, 42, 23)
    loss = net.loss(target, {"frames": frames})         # frames (B, 22, 3, H, W) uint8
    pred = net.predict({"frames": frames})              # (B, 42, 23)
    keys, dist, idx = nearest_clips(pred, bank, bank_keys)   # bank (N, 42, 23) of the training clips
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from physdiff.models.video import IMAGENET_MEAN, IMAGENET_STD, VideoEncoder, build_backbone
from physdiff.physics.cochleagram import ErbFilterbank, cochleagram, cochleagram_length, erb_filterbank

# ITU-R BT.601 luma weights: the grayscale of Owens' spacetime images.
LUMA = (0.299, 0.587, 0.114)


def spacetime_images(frames: Tensor) -> Tensor:
    """(B, T, 3, H, W) RGB in [0, 1] -> (B, T, 3, H, W): channels = grayscale of frames t-1, t, t+1
    (the clip's first / last frame stands in for its missing neighbour)."""
    w = torch.tensor(LUMA, device=frames.device, dtype=frames.dtype).view(1, 1, 3, 1, 1)
    gray = (frames * w).sum(2)  # (B, T, H, W)
    prev = torch.cat([gray[:, :1], gray[:, :-1]], dim=1)  # (B, T, H, W)
    nxt = torch.cat([gray[:, 1:], gray[:, -1:]], dim=1)  # (B, T, H, W)
    return torch.stack([prev, gray, nxt], dim=2)  # (B, T, 3, H, W)


def robust_loss(pred: Tensor, target: Tensor, eps: float = 1.0 / 625.0, reduction: str = "mean") -> Tensor:
    """Owens et al.'s robust regression loss: mean over time of log(eps + |s_t - s_hat_t|^2).

    pred, target (B, C, S); the squared norm is over the C channels of each time sample. (B,) with
    ``reduction="none"``.
    """
    r2 = (pred.float() - target.float()).square().sum(1)  # (B, S)
    per_clip = torch.log(eps + r2).mean(1)  # (B,)
    return per_clip if reduction == "none" else per_clip.mean()


class OwensSoundNet(nn.Module):
    """frames (B, T, 3, H, W) (or per-frame features (B, T, D)) -> predicted cochleagram (B, C, S)."""

    def __init__(self, *, sample_rate: int, num_samples: int, video_frames: int = 22, input: str = "spacetime",
                 color_context: bool = True, backbone: str = "resnet50", small_widths: Sequence[int] = (16, 32, 64, 128),
                 small_blocks: Sequence[int] = (1, 1, 1, 1), feature_dim: int = 0, lstm_hidden: int = 256,
                 lstm_layers: int = 1, dropout: float = 0.0, num_bands: int = 40, fmin: float = 20.0,
                 fmax: float = 0.0, compression: float = 0.3, samples_per_frame: int = 3,
                 video_fps: float = 30000 / 1001, loss_kind: str = "robust", robust_eps: float = 1.0 / 625.0) -> None:
        super().__init__()
        if input not in ("spacetime", "rgb", "features"):
            raise ValueError(f"input must be spacetime, rgb or features, got {input!r}")
        self.sample_rate, self.num_samples, self.video_frames = sample_rate, num_samples, video_frames
        self.input, self.color_context = input, color_context and input != "features"
        self.num_bands, self.fmin, self.fmax, self.compression = num_bands, fmin, fmax, compression
        self.samples_per_frame, self.rate = samples_per_frame, samples_per_frame * video_fps
        self.loss_kind, self.robust_eps = loss_kind, robust_eps
        self.channels = num_bands + 2
        self.out_samples = cochleagram_length(num_samples, sample_rate, self.rate)  # S
        self.out_steps = math.ceil(self.out_samples / samples_per_frame)  # frames whose outputs cover the clip
        self.onset_index = video_frames // 2  # the shards' window: onset - T//2 .. onset + T - T//2 - 1
        if self.onset_index + self.out_steps > video_frames:
            raise ValueError(f"the {self.out_samples} cochleagram samples need {self.out_steps} frames from the onset "
                             f"frame {self.onset_index}, but the clip has {video_frames} frames")
        if input == "features":
            if feature_dim < 1:
                raise ValueError("input='features' needs feature_dim, the width of the per-frame features")
            self.cnn, step_dim = None, feature_dim
            self.in_norm: nn.Module = nn.LayerNorm(feature_dim)
        else:
            self.cnn, cnn_dim = build_backbone(backbone, small_widths, small_blocks)
            step_dim = cnn_dim * (2 if self.color_context else 1)
            self.in_norm = nn.Identity()
            self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.lstm = nn.LSTM(step_dim, lstm_hidden, lstm_layers, batch_first=True,
                            dropout=dropout if lstm_layers > 1 else 0.0)
        self.head = nn.Linear(lstm_hidden, samples_per_frame * self.channels)
        self._bank: ErbFilterbank | None = None

    @classmethod
    def from_config(cls, section: Any, audio: Any, *, num_frames: int = 22, feature_dim: int = 0) -> "OwensSoundNet":
        """From an :class:`~physdiff.models.baselines_config.OwensConfig`, the ``audio`` section, the clip's frame
        count (``video.num_frames``) and, for ``input="features"``, the per-frame feature width."""
        s = section
        net = cls(sample_rate=audio.sample_rate, num_samples=audio.num_samples, video_frames=num_frames, input=s.input,
                  color_context=s.color_context, backbone=s.backbone, small_widths=s.small_widths,
                  small_blocks=s.small_blocks, feature_dim=feature_dim, lstm_hidden=s.lstm_hidden,
                  lstm_layers=s.lstm_layers, dropout=s.dropout, num_bands=s.num_bands, fmin=s.fmin, fmax=s.fmax,
                  compression=s.compression, samples_per_frame=s.samples_per_frame, video_fps=s.video_fps,
                  loss_kind=s.loss, robust_eps=s.robust_eps)
        if s.pretrained and net.cnn is not None:
            # The video encoder's loader (prefix handling, fc dropped, any other mismatch an error naming the
            # file); it only reads ``self.backbone``.
            VideoEncoder.load_pretrained(SimpleNamespace(backbone=net.cnn), s.pretrained)  # type: ignore[arg-type]
        if s.channels_last and net.cnn is not None:
            net.cnn.to(memory_format=torch.channels_last)
        return net

    # ------------------------------------------------------------------ the target
    def filterbank(self, device: torch.device) -> ErbFilterbank:
        """The ERB filterbank for this clip length, built once per device."""
        if self._bank is None or self._bank.response.device != device:
            self._bank = erb_filterbank(self.num_samples, self.sample_rate, self.num_bands, self.fmin, self.fmax,
                                        device=device)
        return self._bank

    @torch.no_grad()
    def sound_features(self, audio: Tensor) -> Tensor:
        """The regression target: the cochleagram of each (peak-normalised) clip, (B, T) -> (B, C, S)."""
        audio = audio.float()
        return cochleagram(audio, self.sample_rate, self.rate, num_bands=self.num_bands, fmin=self.fmin, fmax=self.fmax,
                           compression=self.compression, bank=self.filterbank(audio.device))  # (B, C, S)

    # ------------------------------------------------------------------ the network
    def _cnn_features(self, frames: Tensor) -> Tensor:
        """(B, T, 3, H, W) uint8 or [0, 1] float frames -> per-step CNN features (B, T, step_dim)."""
        b, t = frames.shape[:2]
        if t != self.video_frames:
            raise ValueError(f"Owens baseline built for {self.video_frames} frames per clip, got {t}")
        x = frames.float() / 255.0 if frames.dtype == torch.uint8 else frames.float()  # (B, T, 3, H, W)
        imgs = spacetime_images(x) if self.input == "spacetime" else x  # (B, T, 3, H, W)
        batch = imgs.flatten(0, 1)  # (B*T, 3, H, W)
        if self.color_context:
            batch = torch.cat([batch, x[:, 0]])  # (B*T + B, 3, H, W): + each clip's first colour frame
        batch = (batch - self.mean) / self.std
        if next(self.cnn.parameters()).is_contiguous(memory_format=torch.channels_last):  # type: ignore[union-attr]
            batch = batch.contiguous(memory_format=torch.channels_last)
        feats = self.cnn(batch)  # type: ignore[misc]  # (B*T [+ B], D)
        steps = feats[: b * t].view(b, t, -1)  # (B, T, D)
        if self.color_context:
            color = feats[b * t :].view(b, 1, -1).expand(-1, t, -1)  # (B, T, D)
            steps = torch.cat([steps, color], dim=-1)  # (B, T, 2D)
        return steps

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        """Predicted cochleagram (B, C, S) from ``"frames"`` (B, T, 3, H, W), or ``"nu_frames"`` (B, T, D)
        when ``input="features"``."""
        if self.cnn is None:
            if "nu_frames" not in inputs:
                raise KeyError(f"owens.input='features' needs 'nu_frames' (B, T, D); got keys {sorted(inputs)}")
            steps = self.in_norm(inputs["nu_frames"].float())  # (B, T, D)
        else:
            if "frames" not in inputs:
                raise KeyError(f"the Owens baseline needs 'frames' (B, T, 3, H, W); got keys {sorted(inputs)}")
            steps = self._cnn_features(inputs["frames"])  # (B, T, D')
        h, _ = self.lstm(steps)  # (B, T, H)
        h = h[:, self.onset_index : self.onset_index + self.out_steps]  # (B, K, H): the steps the sound spans
        b, k = h.shape[:2]
        out = self.head(h).view(b, k, self.samples_per_frame, self.channels)  # (B, K, 3, C)
        out = out.reshape(b, k * self.samples_per_frame, self.channels)[:, : self.out_samples]  # (B, S, C)
        return out.transpose(1, 2)  # (B, C, S)

    def loss(self, target: Tensor, inputs: Mapping[str, Tensor], reduction: str = "mean") -> Tensor:
        """Robust (Owens) or squared error between the predicted and the clip's cochleagram ``target`` (B, C, S)."""
        pred = self(inputs)  # (B, C, S)
        if pred.shape != target.shape:
            raise ValueError(f"predicted cochleagram {tuple(pred.shape)} vs target {tuple(target.shape)}")
        if self.loss_kind == "robust":
            return robust_loss(pred, target, self.robust_eps, reduction)
        per_clip = (pred.float() - target.float()).square().flatten(1).mean(1)  # (B,)
        return per_clip if reduction == "none" else per_clip.mean()

    @torch.no_grad()
    def predict(self, inputs: Mapping[str, Tensor]) -> Tensor:
        """The predicted cochleagram (B, C, S), the retrieval query."""
        return self(inputs)


# ----------------------------------------------------------------------------- retrieval


def cochleagram_keys(features: Tensor) -> Tensor:
    """Flatten cochleagrams to retrieval keys: (N, C, S) -> (N, C*S) float32 (Euclidean over the whole clip)."""
    if features.dim() != 3:
        raise ValueError(f"cochleagram features must be (N, C, S), got {tuple(features.shape)}")
    return features.detach().float().flatten(1)  # (N, C*S)


@torch.no_grad()
def nearest_clips(pred: Tensor, bank: Tensor, bank_keys: Sequence[str], k: int = 1) -> tuple[list[str], Tensor, Tensor]:
    """The training clips whose cochleagram is nearest (Euclidean) to each prediction.

    pred (B, C, S) predictions; bank (N, C, S) the training clips' cochleagrams, row-aligned with
    ``bank_keys``. Returns (the nearest clip's key per query, dist (B, k), idx (B, k)); ties go to the lower
    row (:func:`physdiff.retrieval.index.query`). For a persistent index, ``physdiff.retrieval.build_index``
    takes ``cochleagram_keys(bank)`` as keys.
    """
    from physdiff.retrieval.index import query

    if len(bank_keys) != bank.shape[0]:
        raise ValueError(f"{bank.shape[0]} cochleagrams but {len(bank_keys)} clip keys")
    if pred.shape[1:] != bank.shape[1:]:
        raise ValueError(f"prediction {tuple(pred.shape)} and bank {tuple(bank.shape)} differ in (C, S)")
    dist, idx = query(cochleagram_keys(bank).to(pred.device), cochleagram_keys(pred), k=k)  # (B, k) each
    return [bank_keys[i] for i in idx[:, 0].tolist()], dist, idx
