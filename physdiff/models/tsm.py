"""Temporal Shift Module (Lin, Gan & Han, ICCV 2019) for 2-D ResNets over a clip's frames.

A 2-D CNN sees the clip as a batch of B*T frames. Inside every residual block, before the first
convolution of the residual branch ("residual shift", the TSM paper's best variant), 1/fold_div of the
channels are shifted one frame backward in time (frame i reads frame i+1), the next 1/fold_div one frame
forward (frame i reads frame i-1), the rest stay; missing neighbours at the clip ends are zeros. The
convolution then mixes information across time at zero extra FLOPs.

The shift lives in a ``Conv2d`` subclass that replaces ``block.conv1``, so parameter names are unchanged
and torchvision state dicts (e.g. ImageNet weights from a local file) load as they are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def temporal_shift(x: Tensor, num_frames: int, fold_div: int = 8) -> Tensor:
    """Shift channels along time. x: (B*T, C, H, W) with frames of a clip contiguous -> same shape.

    Channels [0, C/fold_div) take the *next* frame's values (shift backward in time), channels
    [C/fold_div, 2C/fold_div) take the *previous* frame's (shift forward), the rest are unchanged.
    """
    bt, c, h, w = x.shape
    if bt % num_frames:
        raise ValueError(f"temporal_shift: batch {bt} is not a multiple of num_frames {num_frames}")
    fold = c // fold_div
    if fold == 0:
        return x
    v = x.reshape(bt // num_frames, num_frames, c, h, w)  # (B, T, C, H, W)
    # F.pad over (T) on a (B, C', T, H*W) view keeps it one fused copy per part; zeros enter at the ends.
    back = F.pad(v[:, 1:, :fold], (0, 0, 0, 0, 0, 0, 0, 1))  # (B, T, fold, H, W): frame i <- i+1
    fwd = F.pad(v[:, :-1, fold : 2 * fold], (0, 0, 0, 0, 0, 0, 1, 0))  # (B, T, fold, H, W): frame i <- i-1
    out = torch.cat([back, fwd, v[:, :, 2 * fold :]], dim=2)  # (B, T, C, H, W)
    out = out.reshape(bt, c, h, w)
    if x.is_contiguous(memory_format=torch.channels_last):
        out = out.contiguous(memory_format=torch.channels_last)
    return out


class TemporalShiftConv2d(nn.Conv2d):
    """A Conv2d that applies :func:`temporal_shift` to its input first (same parameters, same state-dict keys)."""

    def __init__(self, *args, num_frames: int = 8, fold_div: int = 8, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.num_frames = num_frames
        self.fold_div = fold_div

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, num_frames: int, fold_div: int) -> "TemporalShiftConv2d":
        new = cls(
            conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride, padding=conv.padding,
            dilation=conv.dilation, groups=conv.groups, bias=conv.bias is not None, padding_mode=conv.padding_mode,
            num_frames=num_frames, fold_div=fold_div,
        )
        new.load_state_dict(conv.state_dict())
        return new.to(conv.weight.device, conv.weight.dtype)

    def forward(self, x: Tensor) -> Tensor:  # (B*T, C, H, W) -> (B*T, C', H', W')
        return super().forward(temporal_shift(x, self.num_frames, self.fold_div))

    def extra_repr(self) -> str:
        return super().extra_repr() + f", temporal_shift(num_frames={self.num_frames}, fold_div={self.fold_div})"


def add_temporal_shift(resnet: nn.Module, num_frames: int, fold_div: int = 8) -> int:
    """Insert the shift before ``conv1`` of every residual block (Bottleneck or BasicBlock) in place.

    Works on torchvision ResNets and on any module whose residual blocks are children of ``layer1``..
    ``layer4`` with a ``conv1`` attribute. Returns the number of blocks shifted.
    """
    count = 0
    for name in ("layer1", "layer2", "layer3", "layer4"):
        layer = getattr(resnet, name, None)
        if layer is None:
            continue
        for block in layer.children():
            conv = getattr(block, "conv1", None)
            if isinstance(conv, nn.Conv2d) and not isinstance(conv, TemporalShiftConv2d):
                block.conv1 = TemporalShiftConv2d.from_conv(conv, num_frames, fold_div)
                count += 1
    if count == 0:
        raise ValueError("add_temporal_shift: no residual blocks with conv1 under layer1..layer4")
    return count
