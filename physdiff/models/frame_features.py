"""Per-frame visual features for the regression baselines (ConvNet- and Transformer-based, Table 1).

The video encoder pools each of the 22 frames to a D-wide feature before averaging them over time into
nu (:meth:`physdiff.models.video.VideoEncoder.frame_features`); the video stage exports them as
``nu_frames`` (N, T, D). Where only the time-averaged nu (N, D) exists, it stands for every frame
(constant over time): the baselines still run, with no temporal cue.

    seq = frame_sequence(nu_frames=batch_nu_frames)           # (B, T, D)
    seq = frame_sequence(nu=batch_nu, num_frames=22)          # (B, 22, D), nu broadcast over time
    up = upsample_time(seq, 44)                               # (B, 44, D)
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def frame_sequence(nu_frames: Tensor | None = None, nu: Tensor | None = None, num_frames: int = 22) -> Tensor:
    """(B, T, D) per-frame features: ``nu_frames`` as given, else ``nu`` (B, D) repeated ``num_frames`` times."""
    if nu_frames is not None:
        if nu_frames.dim() != 3:
            raise ValueError(f"nu_frames must be (B, T, D), got {tuple(nu_frames.shape)}")
        return nu_frames.float()
    if nu is None:
        raise KeyError("the regression baselines need 'nu_frames' (B, T, D) or 'nu' (B, D); got neither")
    if nu.dim() != 2:
        raise ValueError(f"nu must be (B, D), got {tuple(nu.shape)}")
    return nu.float()[:, None, :].expand(-1, num_frames, -1)  # (B, T, D)


def upsample_time(seq: Tensor, length: int, mode: str = "linear") -> Tensor:
    """(B, T, D) -> (B, length, D) by interpolation along time (``align_corners=True``: first and last frames
    map onto the first and last output step, so a T = 22 clip spans all N = 44 spectrogram frames)."""
    if mode not in ("linear", "nearest"):
        raise ValueError(f"upsample mode must be linear or nearest, got {mode!r}")
    x = seq.transpose(1, 2)  # (B, D, T)
    if mode == "linear":
        x = F.interpolate(x, size=length, mode="linear", align_corners=True) if seq.shape[1] > 1 else x.expand(-1, -1, length)
    else:
        x = F.interpolate(x, size=length, mode="nearest")
    return x.transpose(1, 2)  # (B, length, D)
