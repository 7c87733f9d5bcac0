"""The spectrogram material classifier behind the evaluation metrics (paper Sec. 4, Table 1).

The paper scores generated sounds with a material classifier trained on real spectrograms: its
penultimate features give FID/KID, its softmax outputs give the KL divergence to the ground
truth, and its predictions give recognition accuracy. In ``paper`` the backbone is a torchvision
ResNet-50 whose stem takes one channel (the normalised log-magnitude spectrogram, ``(B, 1, F, N)``);
``tiny`` uses a small 4-block CNN that trains in minutes on a CPU. Both are randomly initialised
(nothing can be downloaded; ``load_pretrained`` takes a local state dict).

Training (the ``classifier`` stage, ``physdiff.stages.classifier``) augments the spectrograms with
``physdiff.eval.spec_augment`` and may add dropout before the head; without that the classifier
memorises the training videos' rooms and objects instead of material.

Both backbones end in global average pooling, so any spectrogram size works (1025 x 44, 257 x 32, ...).
``forward`` returns ``(logits (B, C), features (B, D))``; ``num_features`` = D is what torchmetrics'
FID/KID look for on a custom feature extractor.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torchvision

__all__ = ["SpecClassifier", "BACKBONES", "build_spec_classifier"]

BACKBONES = ("resnet50", "resnet18", "tiny")


class _TinyCNN(nn.Module):
    """Four conv blocks (conv-BN-ReLU, stride 2) -> global average pool; ``width * 8`` features."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        chans = [1, width, width * 2, width * 4, width * 8]
        layers: list[nn.Module] = []
        for cin, cout in zip(chans[:-1], chans[1:]):
            layers += [
                nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
                nn.Conv2d(cout, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            ]
        self.body = nn.Sequential(*layers)
        self.num_features = chans[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(dim=(2, 3))  # (B, D)


def _resnet_trunk(name: str) -> tuple[nn.Module, int]:
    """A torchvision ResNet with a 1-channel stem and no classifier head; returns (trunk, D)."""
    net = getattr(torchvision.models, name)(weights=None)
    # One input channel: the spectrogram is not an RGB image. Same kernel, stride and padding as
    # the RGB stem, so the receptive field and the downsampling schedule are the ResNet's own.
    net.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
    dim = net.fc.in_features
    net.fc = nn.Identity()  # forward now returns the pooled (B, D) features
    return net, dim


class SpecClassifier(nn.Module):
    """Material classifier on ``(B, 1, F, N)`` spectrograms; returns ``(logits, features)``."""

    def __init__(self, num_classes: int, backbone: str = "resnet50", width: int = 16, dropout: float = 0.0) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown spectrogram classifier backbone {backbone!r}; choose from {BACKBONES}")
        if num_classes < 2:
            raise ValueError(f"a material classifier needs >= 2 classes, got {num_classes}")
        self.backbone_name = backbone
        self.num_classes = num_classes
        if backbone == "tiny":
            self.trunk: nn.Module = _TinyCNN(width)
            self.num_features = self.trunk.num_features
        else:
            self.trunk, self.num_features = _resnet_trunk(backbone)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.num_features, num_classes)

    def forward(self, spec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if spec.dim() == 3:
            spec = spec.unsqueeze(1)  # (B, F, N) -> (B, 1, F, N)
        if spec.dim() != 4 or spec.shape[1] != 1:
            raise ValueError(f"SpecClassifier expects (B, 1, F, N) spectrograms, got {tuple(spec.shape)}")
        feats = self.trunk(spec)  # (B, D)
        logits = self.head(self.dropout(feats))  # (B, C)
        return logits, feats

    def load_pretrained(self, path: str | Path) -> None:
        """Load a local state dict (safetensors or a weights-only torch file)."""
        path = Path(path)
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
        self.load_state_dict(state)


def build_spec_classifier(num_classes: int, cfg: "object") -> SpecClassifier:
    """Build from a :class:`physdiff.eval.config.ClassifierConfig` (``backbone``, ``width``, ``dropout``)."""
    return SpecClassifier(num_classes, backbone=getattr(cfg, "backbone"), width=getattr(cfg, "width", 16),
                          dropout=getattr(cfg, "dropout", 0.0))
