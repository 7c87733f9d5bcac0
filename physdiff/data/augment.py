"""Clip augmentation for the video classifier, on tensors, batched, identical across a clip's frames.

Standard image-classifier augmentation (random resized crop, horizontal flip, colour jitter), but with
one draw per *clip*: every frame of a clip gets the same crop, flip and colour change, so the temporal
shift modules see a coherent video (the stick moves, the picture does not jump). Runs on whatever
device the frames are on (the GPU in training), after the uint8 frames have been moved there:

    x = frames_to_float(batch["frames"].to(device))                  # (B, T, 3, H, W) in [0, 1]
    x = augment_clips(x, cfg.video, size=cfg.video.frame_size)       # training
    x = resize_clips(x, size=cfg.video.frame_size)                   # evaluation: whole frame, no randomness

The crop and flip are one affine map per clip sampled with ``grid_sample`` (bilinear) straight to the
output size; the colour jitter is torchvision's (brightness, contrast, saturation; hue as a rotation in
YIQ space) in a fixed order, fused into one colour matrix + offset per clip and clamped to [0, 1] once. Parameters come from ``generator`` or the global
torch RNG, which the training engine checkpoints per rank, so a resumed run draws the same augmentations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

# ITU-R BT.601 luma, as torchvision's rgb_to_grayscale.
_LUMA = (0.299, 0.587, 0.114)
_RGB_TO_YIQ = ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))


@dataclass
class ClipAugment:
    """Per-clip augmentation parameters for a batch of B clips."""

    theta: Tensor  # (B, 2, 3) affine map output -> input coordinates (crop + flip), in grid_sample's [-1, 1]
    brightness: Tensor  # (B,) multiplicative factors
    contrast: Tensor  # (B,)
    saturation: Tensor  # (B,)
    hue: Tensor  # (B,) shift in turns

    _FIELDS = ("theta", "brightness", "contrast", "saturation", "hue")

    def to(self, device: torch.device | str) -> "ClipAugment":
        return ClipAugment(*(getattr(self, f).to(device) for f in self._FIELDS))

    def select(self, idx: Tensor | slice) -> "ClipAugment":
        """The parameters of a subset of clips (e.g. to augment one clip on its own)."""
        return ClipAugment(*(getattr(self, f)[idx] for f in self._FIELDS))


def _uniform(n: int, lo: float, hi: float, generator: torch.Generator | None) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=generator)  # (n,)


def sample_clip_params(n: int, cfg: Any, generator: torch.Generator | None = None) -> ClipAugment:
    """Draw augmentation parameters for ``n`` clips from a ``VideoConfig``-like ``cfg``.

    Crop: area fraction in ``cfg.crop_scale`` and aspect ratio log-uniform in ``cfg.crop_ratio`` (as
    torchvision's RandomResizedCrop; a side longer than the frame is clamped to the frame), centre uniform
    among the positions that keep the crop inside the frame. Flip with p = 0.5 when ``cfg.flip``.
    """
    area = _uniform(n, cfg.crop_scale[0], cfg.crop_scale[1], generator)  # (n,)
    log_r = _uniform(n, math.log(cfg.crop_ratio[0]), math.log(cfg.crop_ratio[1]), generator)  # (n,)
    ratio = torch.exp(log_r)
    w = torch.sqrt(area * ratio).clamp(max=1.0)  # (n,) crop width as a fraction of the frame width
    h = torch.sqrt(area / ratio).clamp(max=1.0)  # (n,)
    cx = (1.0 - w) * (2.0 * torch.rand(n, generator=generator) - 1.0)  # (n,) centre in [-1 + w, 1 - w]
    cy = (1.0 - h) * (2.0 * torch.rand(n, generator=generator) - 1.0)  # (n,)
    if cfg.flip:
        sign = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)  # (n,)
    else:
        sign = torch.ones(n)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = w * sign  # a negative x scale mirrors the crop
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = h
    theta[:, 1, 2] = cy
    return ClipAugment(
        theta=theta,
        brightness=_uniform(n, 1.0 - cfg.brightness, 1.0 + cfg.brightness, generator),
        contrast=_uniform(n, 1.0 - cfg.contrast, 1.0 + cfg.contrast, generator),
        saturation=_uniform(n, 1.0 - cfg.saturation, 1.0 + cfg.saturation, generator),
        hue=_uniform(n, -cfg.hue, cfg.hue, generator),
    )


def _gray(x: Tensor) -> Tensor:
    """(..., 3, H, W) -> (..., 1, H, W) luma."""
    r, g, b = x.unbind(-3)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(-3)


def _hue_matrices(turns: Tensor) -> Tensor:
    """(B,) hue shifts -> (B, 3, 3) RGB -> RGB matrices: rotate the chroma plane (I, Q) of YIQ."""
    yiq = torch.tensor(_RGB_TO_YIQ, dtype=turns.dtype, device=turns.device)  # (3, 3)
    a = 2.0 * math.pi * turns  # (B,)
    rot = torch.zeros(turns.shape[0], 3, 3, dtype=turns.dtype, device=turns.device)
    rot[:, 0, 0] = 1.0
    rot[:, 1, 1], rot[:, 1, 2] = torch.cos(a), -torch.sin(a)
    rot[:, 2, 1], rot[:, 2, 2] = torch.sin(a), torch.cos(a)
    return torch.linalg.inv(yiq) @ rot @ yiq  # (B, 3, 3)


def colour_matrices(p: ClipAugment) -> Tensor:
    """(B, 3, 3) RGB maps of the colour jitter without its contrast offset: H @ S @ (c * b * I).

    Saturation s blends with luma: S = s I + (1 - s) 1 l^T; hue H rotates the YIQ chroma plane. Both map
    grey to itself (S 1 = 1, H 1 = 1), which is why contrast's offset (1 - c) * b * mean passes through them.
    """
    n = p.brightness.shape[0]
    eye = torch.eye(3, dtype=p.brightness.dtype, device=p.brightness.device).expand(n, 3, 3)  # (B, 3, 3)
    luma = torch.tensor(_LUMA, dtype=eye.dtype, device=eye.device)  # (3,)
    s = p.saturation.view(n, 1, 1)
    sat = s * eye + (1.0 - s) * luma.view(1, 1, 3).expand(n, 3, 3)  # (B, 3, 3): every row blends toward l^T x
    m = sat * (p.contrast * p.brightness).view(n, 1, 1)  # (B, 3, 3)
    if bool((p.hue != 0).any()):
        m = _hue_matrices(p.hue) @ m
    return m


def apply_clip_params(frames: Tensor, params: ClipAugment, size: int) -> Tensor:
    """Apply per-clip ``params`` to every frame. frames (B, T, 3, H, W) float in [0, 1] -> (B, T, 3, size, size)."""
    b, t, c, _, _ = frames.shape
    p = params.to(frames.device)
    x = frames.reshape(b * t, c, *frames.shape[-2:])  # (B*T, 3, H, W)
    theta = p.theta.to(frames.dtype).repeat_interleave(t, dim=0)  # (B*T, 2, 3): the clip's map for each frame
    grid = F.affine_grid(theta, [b * t, c, size, size], align_corners=False)  # (B*T, S, S, 2)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)  # (B*T, 3, S, S)
    x = x.view(b, t, c, size, size)  # (B, T, 3, S, S)

    # Colour jitter as one affine colour map per clip (brightness, contrast, saturation, hue in that order):
    # all four are linear in RGB, contrast adds a per-frame offset, so a single pass replaces four
    # (torchvision clamps after each op; here only the result is clamped).
    m = colour_matrices(p).to(x.dtype)  # (B, 3, 3)
    mean = _gray(x).mean(dim=(-3, -2, -1), keepdim=True)  # (B, T, 1, 1, 1): per-frame mean luma, as torchvision
    # contrast blends with the mean luma of the brightened frame (b * mean); saturation and hue keep grey grey
    offset = ((1.0 - p.contrast) * p.brightness).to(x.dtype).view(b, 1, 1, 1, 1) * mean  # (B, T, 1, 1, 1)
    x = torch.einsum("bij,btjhw->btihw", m, x).add_(offset).clamp_(0.0, 1.0)  # (B, T, 3, S, S)
    return x


def augment_clips(frames: Tensor, cfg: Any, size: int, generator: torch.Generator | None = None) -> Tensor:
    """Training augmentation: one random draw per clip, applied to all its frames (see module docstring)."""
    params = sample_clip_params(frames.shape[0], cfg, generator)
    return apply_clip_params(frames, params, size)


def resize_clips(frames: Tensor, size: int) -> Tensor:
    """Evaluation transform: the whole frame resized to ``size`` (antialiased); unchanged when it already fits."""
    b, t, c, h, w = frames.shape
    if (h, w) == (size, size):
        return frames
    x = F.interpolate(frames.reshape(b * t, c, h, w), size=(size, size), mode="bilinear", antialias=True,
                      align_corners=False)  # (B*T, 3, S, S)
    return x.view(b, t, c, size, size).clamp_(0.0, 1.0)
