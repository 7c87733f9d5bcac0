"""The visual encoder (paper Sec. 3.3): a ResNet with temporal shift over the 22 frames around the hit.

Each frame goes through a 2-D ResNet whose residual blocks shift 1/8 of their channels forward and 1/8
backward in time (TSM); the per-frame pooled features are averaged over time to the visual latent nu, and a
linear head over nu classifies the material among the 17 Greatest Hits classes (the training signal).
Averaging then one linear head equals TSM's average consensus of per-frame logits.

Backbones: torchvision ``resnet50`` (the paper's, nu is 2048-d) or ``resnet18`` (512-d), randomly initialised
unless a local state dict is given (nothing is downloaded); ``resnet_small``, a narrow ResNet of BasicBlocks
that trains on a CPU (the ``tiny`` preset; nu is its last width).

    enc = VideoEncoder.from_config(cfg.video)
    nu, logits = enc(frames)  # frames (B, T, 3, H, W) uint8 or float in [0, 1]
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import resnet18, resnet50
from torchvision.models.resnet import BasicBlock

from physdiff.data.labels import GREATEST_HITS_MATERIALS
from physdiff.models.tsm import add_temporal_shift

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class SmallResNet(nn.Module):
    """A narrow ResNet (torchvision BasicBlocks, four stages, strides 1/2/2/2 after a stride-2 stem).

    Named like torchvision's (conv1, bn1, layer1..layer4, fc) so TSM insertion and pooling are shared.
    """

    def __init__(self, widths: Sequence[int] = (16, 32, 64, 128), blocks: Sequence[int] = (1, 1, 1, 1)) -> None:
        super().__init__()
        w0 = widths[0]
        self.conv1 = nn.Conv2d(3, w0, 5, stride=2, padding=2, bias=False)
        self.bn1 = nn.BatchNorm2d(w0)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        inplanes = w0
        for i, (w, n) in enumerate(zip(widths, blocks)):
            stride = 1 if i == 0 else 2
            layers = []
            for j in range(n):
                down = None
                if j == 0 and (stride != 1 or inplanes != w):
                    down = nn.Sequential(nn.Conv2d(inplanes, w, 1, stride=stride, bias=False), nn.BatchNorm2d(w))
                layers.append(BasicBlock(inplanes, w, stride=stride if j == 0 else 1, downsample=down))
                inplanes = w
            setattr(self, f"layer{i + 1}", nn.Sequential(*layers))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Identity()
        self.out_dim = inplanes
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:  # (N, 3, H, W) -> (N, C)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)


def build_backbone(name: str, small_widths: Sequence[int] = (16, 32, 64, 128),
                   small_blocks: Sequence[int] = (1, 1, 1, 1)) -> tuple[nn.Module, int]:
    """A headless 2-D backbone (fc = Identity) and its pooled feature width."""
    if name == "resnet50":
        net, dim = resnet50(weights=None), 2048
    elif name == "resnet18":
        net, dim = resnet18(weights=None), 512
    elif name == "resnet_small":
        net = SmallResNet(small_widths, small_blocks)
        return net, net.out_dim
    else:
        raise ValueError(f"unknown video backbone {name!r}; resnet50, resnet18 or resnet_small")
    net.fc = nn.Identity()
    return net, dim


def video_feature_dim(cfg: object) -> int:
    """The width of nu for a ``VideoConfig`` (2048 for resnet50, 512 for resnet18, the last small width)."""
    name = getattr(cfg, "backbone")
    return {"resnet50": 2048, "resnet18": 512}.get(name) or int(getattr(cfg, "small_widths")[-1])


class VideoEncoder(nn.Module):
    """ResNet + TSM over T frames -> (nu (B, D_nu), logits (B, num_classes))."""

    def __init__(self, backbone: str = "resnet50", *, num_frames: int = 22, fold_div: int = 8,
                 num_classes: int = len(GREATEST_HITS_MATERIALS), dropout: float = 0.5,
                 small_widths: Sequence[int] = (16, 32, 64, 128), small_blocks: Sequence[int] = (1, 1, 1, 1)) -> None:
        super().__init__()
        self.num_frames = num_frames
        self.backbone, self.feature_dim = build_backbone(backbone, small_widths, small_blocks)
        self.shifted_blocks = add_temporal_shift(self.backbone, num_frames, fold_div)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.feature_dim, num_classes)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def from_config(cls, cfg: object, num_classes: int = len(GREATEST_HITS_MATERIALS)) -> "VideoEncoder":
        enc = cls(cfg.backbone, num_frames=cfg.num_frames, fold_div=cfg.tsm_fold_div,  # type: ignore[attr-defined]
                  num_classes=num_classes, dropout=cfg.dropout, small_widths=cfg.small_widths,  # type: ignore[attr-defined]
                  small_blocks=cfg.small_blocks)  # type: ignore[attr-defined]
        if cfg.pretrained:  # type: ignore[attr-defined]
            enc.load_pretrained(cfg.pretrained)  # type: ignore[attr-defined]
        return enc

    def load_pretrained(self, path: str | Path) -> list[str]:
        """Load a local torchvision-style backbone state dict (weights_only; no download).

        Keys may carry a ``backbone.`` or ``module.`` prefix; a classifier ``fc.*`` of another class count
        (ImageNet's 1000) is dropped. Any other missing or unexpected key is an error naming the file.
        Returns the keys that were dropped.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"pretrained video weights not found: {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        clean: dict[str, Tensor] = {}
        for k, v in state.items():
            for prefix in ("module.", "backbone."):
                if k.startswith(prefix):
                    k = k[len(prefix):]
            clean[k] = v
        dropped = [k for k in clean if k.startswith("fc.")]
        for k in dropped:
            del clean[k]
        own = {k: v for k, v in self.backbone.state_dict().items() if not k.startswith("fc.")}
        missing = [k for k in own if k not in clean]
        unexpected = [k for k in clean if k not in own]
        wrong = [k for k in own if k in clean and tuple(clean[k].shape) != tuple(own[k].shape)]
        if missing or unexpected or wrong:  # checked before loading, so a bad file leaves the model untouched
            raise ValueError(f"{path}: state dict does not fit the {type(self.backbone).__name__} backbone "
                             f"(missing {missing[:3]}, unexpected {unexpected[:3]}, wrong shape {wrong[:3]})")
        self.backbone.load_state_dict(clean, strict=False)
        return dropped

    def frame_features(self, frames: Tensor) -> Tensor:
        """frames (B, T, 3, H, W) -> per-frame pooled features (B, T, D_nu)."""
        b, t = frames.shape[:2]
        if t != self.num_frames:
            raise ValueError(f"expected {self.num_frames} frames per clip (TSM is built for it), got {t}")
        x = frames.flatten(0, 1)  # (B*T, 3, H, W)
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        x = (x - self.mean) / self.std
        if next(self.backbone.parameters()).is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)
        feats = self.backbone(x)  # (B*T, D_nu)
        return feats.view(b, t, -1)

    def head_from_frames(self, per_frame: Tensor) -> tuple[Tensor, Tensor]:
        """Per-frame features (B, T, D_nu) -> (nu (B, D_nu), logits (B, K)): the temporal average and the head."""
        nu = per_frame.mean(1)  # (B, D_nu): average over time
        logits = self.head(self.dropout(nu))  # (B, K)
        return nu, logits

    def forward(self, frames: Tensor) -> tuple[Tensor, Tensor]:
        """frames (B, T, 3, H, W), uint8 or float in [0, 1] -> (nu (B, D_nu), logits (B, K))."""
        return self.head_from_frames(self.frame_features(frames))


def classification_loss(logits: Tensor, labels: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy over the material classes (the video stage's objective)."""
    return F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
