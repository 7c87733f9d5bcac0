"""Table 1 metrics (paper Sec. 4): FID, KID, KL, recognition accuracy, spectrogram MSE, MR-STFT.

All generation-quality metrics are computed from a spectrogram material classifier trained on real
spectrograms (:mod:`physdiff.models.spec_classifier`), not from an ImageNet Inception network:

- **FID** (Heusel et al. 2017): Frechet distance between Gaussians fitted to the classifier's
  penultimate features of generated vs ground-truth test clips.
- **KID** (Binkowski et al. 2018): unbiased MMD^2 with the polynomial kernel ``(x.y / D + 1)^3``,
  mean and std over random subsets; the subset size is capped at the test-set size.
- **KL**: ``KL(p_gt || p_gen)`` between the classifier's softmax on the ground-truth clip and on
  the generated clip, per clip, averaged (the direction of AudioLDM / SpecVQGAN evaluations: the
  real sound's class distribution is the reference).
- **Accuracy / balanced accuracy**: the classifier's prediction on the generated clip against the
  clip's material label (balanced = mean per-class recall over classes present in the labels).
- **Spectrogram MSE**: mean squared error between generated and ground-truth normalised
  log-magnitude spectrograms ([-1, 1] scale).
- **MR-STFT**: the multi-resolution STFT distance between the waveforms (the training loss of the
  residual stage, :class:`physdiff.physics.MultiResolutionSTFTLoss`).

FID uses torchmetrics' maintained ``FrechetInceptionDistance`` with a pass-through feature
extractor (we hand it the classifier features) and KID torchmetrics' polynomial-kernel MMD, so
neither torch-fidelity nor any download is needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = [
    "ClassifierOutputs",
    "classifier_outputs",
    "fid",
    "kid",
    "kl_divergence",
    "confusion_matrix",
    "accuracy",
    "balanced_accuracy",
    "classification_metrics",
    "spectrogram_mse",
    "mrstft_distance",
    "compute_metrics",
    "METRIC_NAMES",
]

# The keys of :func:`compute_metrics`' result, in table order.
METRIC_NAMES = ("fid", "kid_mean", "kid_std", "kl", "acc", "balanced_acc", "spec_mse", "mrstft")


class _PrecomputedFeatures(nn.Module):
    """Identity 'feature extractor' for torchmetrics: we pass features, it must not recompute them."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = int(num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


@dataclass
class ClassifierOutputs:
    """What the metric classifier says about a set of clips: ``logits (N, C)``, ``features (N, D)``."""

    logits: torch.Tensor
    features: torch.Tensor


@torch.no_grad()
def classifier_outputs(
    model: nn.Module, specs: torch.Tensor, batch_size: int = 64, device: str | torch.device | None = None
) -> ClassifierOutputs:
    """Run the classifier (eval mode) over ``specs (N, 1, F, T)`` in batches; outputs on the CPU, float64."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    logits, feats = [], []
    try:
        for s in range(0, specs.shape[0], batch_size):
            lg, ft = model(specs[s : s + batch_size].to(device, torch.float32))  # (b, C), (b, D)
            logits.append(lg.double().cpu())
            feats.append(ft.double().cpu())
    finally:
        model.train(was_training)
    return ClassifierOutputs(torch.cat(logits), torch.cat(feats))


def _check_features(real: torch.Tensor, fake: torch.Tensor, what: str) -> None:
    if real.dim() != 2 or fake.dim() != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"{what} needs features (N, D) and (M, D); got {tuple(real.shape)} and {tuple(fake.shape)}")
    if real.shape[0] < 2 or fake.shape[0] < 2:
        raise ValueError(f"{what} needs at least 2 clips per set; got {real.shape[0]} real, {fake.shape[0]} generated")
    for x, name in ((real, "real"), (fake, "generated")):
        if not torch.isfinite(x).all():
            raise ValueError(f"{what}: {name} features contain NaN/inf")


def fid(real_features: torch.Tensor, fake_features: torch.Tensor) -> float:
    """Frechet distance ``|mu_r - mu_g|^2 + Tr(S_r + S_g - 2 (S_r S_g)^{1/2})`` (float64, torchmetrics)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    _check_features(real_features, fake_features, "FID")
    metric = FrechetInceptionDistance(feature=_PrecomputedFeatures(real_features.shape[1]), reset_real_features=True)
    metric.update(real_features.double().cpu(), real=True)
    metric.update(fake_features.double().cpu(), real=False)
    value = float(metric.compute())
    # The trace term is a difference of large numbers; a set against itself can land at -1e-12.
    return max(value, 0.0)


def kid(
    real_features: torch.Tensor,
    fake_features: torch.Tensor,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel inception distance: unbiased polynomial-kernel MMD^2 over random subsets -> (mean, std).

    ``subset_size`` is capped at the smaller set (the paper's test split has fewer clips than the
    usual 1000). The subset draws are seeded, so a report is reproducible.
    """
    from torchmetrics.image.kid import poly_mmd

    _check_features(real_features, fake_features, "KID")
    real, fake = real_features.double().cpu(), fake_features.double().cpu()
    size = min(subset_size, real.shape[0], fake.shape[0])
    # torchmetrics' KernelInceptionDistance draws its subsets from the global RNG; we draw them
    # from a local seeded generator (reproducible, no side effects) and use its kernel MMD.
    gen = torch.Generator().manual_seed(seed)
    scores = torch.stack(
        [
            poly_mmd(
                real[torch.randperm(real.shape[0], generator=gen)[:size]],  # (size, D)
                fake[torch.randperm(fake.shape[0], generator=gen)[:size]],  # (size, D)
                degree=degree,
            )
            for _ in range(subsets)
        ]
    )  # (subsets,)
    mean, std = scores.mean(), scores.std(unbiased=False)  # as torchmetrics reports them
    return float(mean), float(std)


def kl_divergence(gen_logits: torch.Tensor, gt_logits: torch.Tensor) -> float:
    """Mean over clips of ``KL(softmax(gt) || softmax(gen))`` (nats), clip i against clip i."""
    if gen_logits.shape != gt_logits.shape or gen_logits.dim() != 2:
        raise ValueError(f"KL needs paired logits (N, C); got {tuple(gen_logits.shape)} and {tuple(gt_logits.shape)}")
    from torchmetrics.functional import kl_divergence as _kl

    log_p = F.log_softmax(gt_logits.double(), dim=-1)  # (N, C) reference: the real sound
    log_q = F.log_softmax(gen_logits.double(), dim=-1)  # (N, C)
    return max(float(_kl(log_p, log_q, log_prob=True, reduction="mean")), 0.0)


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(C, C)`` counts, rows = true class, columns = predicted (torchmetrics)."""
    from torchmetrics.functional.classification import multiclass_confusion_matrix

    if pred.shape != target.shape or pred.dim() != 1:
        raise ValueError(f"predictions and labels must be paired 1-D tensors; got {tuple(pred.shape)}, {tuple(target.shape)}")
    if target.numel() == 0:
        raise ValueError("no clips to score")
    if int(target.min()) < 0 or int(target.max()) >= num_classes:
        raise ValueError(f"labels must be in [0, {num_classes}); got range [{int(target.min())}, {int(target.max())}]")
    return multiclass_confusion_matrix(pred.long(), target.long(), num_classes=num_classes)


def accuracy(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> float:
    """Fraction of clips whose predicted material equals the label."""
    cm = confusion_matrix(pred, target, num_classes).double()
    return float(cm.diagonal().sum() / cm.sum())


def balanced_accuracy(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> float:
    """Mean per-class recall over the classes that occur in ``target`` (scikit-learn's definition).

    torchmetrics' macro recall also averages classes that are only predicted, never true (as 0),
    which would punish a test split that lacks a material; hence the explicit reduction here.
    """
    cm = confusion_matrix(pred, target, num_classes).double()
    support = cm.sum(dim=1)  # (C,)
    present = support > 0
    recall = cm.diagonal()[present] / support[present]
    return float(recall.mean())


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
    """Accuracy, balanced accuracy and their chance levels of ``logits (N, K)`` against ``labels (N,)``.

    The one place classification is scored (the video stage's validation, the metric classifier, Table 1).
    ``chance_acc`` is the share of the most frequent class (the best constant guess's accuracy);
    ``chance_balanced_acc`` is 1 / (classes present), the balanced accuracy of any constant guess.
    Also returns the ``(K, K)`` confusion matrix (rows: truth, columns: prediction).
    """
    k = logits.shape[-1]
    labels = labels.long()
    if labels.numel() == 0:
        return {"acc": 0.0, "balanced_acc": 0.0, "chance_acc": 0.0, "chance_balanced_acc": 0.0,
                "confusion": torch.zeros(k, k, dtype=torch.long)}
    pred = logits.argmax(-1)  # (N,)
    conf = confusion_matrix(pred, labels, k).long()  # (K, K)
    support = conf.sum(1)  # (K,)
    present = support > 0
    recall = conf.diag()[present].double() / support[present].double()  # (K_present,)
    n = int(labels.numel())
    return {
        "acc": float(conf.diag().sum()) / n,
        "balanced_acc": float(recall.mean()),
        "chance_acc": float(support.max()) / n,
        "chance_balanced_acc": 1.0 / int(present.sum()),
        "confusion": conf,
    }


def spectrogram_mse(gen_specs: torch.Tensor, gt_specs: torch.Tensor) -> float:
    """Mean squared error between paired spectrograms (any shape with a leading clip dim)."""
    if gen_specs.shape != gt_specs.shape:
        raise ValueError(f"spectrogram MSE needs paired spectrograms of one shape; got {tuple(gen_specs.shape)}, {tuple(gt_specs.shape)}")
    return float((gen_specs.double() - gt_specs.double()).square().mean())


@torch.no_grad()
def mrstft_distance(gen_audio: torch.Tensor, gt_audio: torch.Tensor, batch_size: int = 64, **loss_kwargs: Any) -> float:
    """Multi-resolution STFT distance between paired waveforms ``(N, T)``, averaged over clips."""
    from physdiff.physics import MultiResolutionSTFTLoss

    if gen_audio.shape != gt_audio.shape or gen_audio.dim() != 2:
        raise ValueError(f"MR-STFT needs paired waveforms (N, T); got {tuple(gen_audio.shape)}, {tuple(gt_audio.shape)}")
    loss = MultiResolutionSTFTLoss(**loss_kwargs)
    total, n = 0.0, gen_audio.shape[0]
    for s in range(0, n, batch_size):
        g, t = gen_audio[s : s + batch_size].float(), gt_audio[s : s + batch_size].float()
        total += float(loss(g, t)) * g.shape[0]  # the loss is a batch mean; weight by clips
    return total / n


def compute_metrics(
    gen: ClassifierOutputs,
    gt: ClassifierOutputs,
    labels: torch.Tensor,
    num_classes: int,
    gen_specs: torch.Tensor | None = None,
    gt_specs: torch.Tensor | None = None,
    gen_audio: torch.Tensor | None = None,
    gt_audio: torch.Tensor | None = None,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    kid_degree: int = 3,
    seed: int = 0,
) -> dict[str, float]:
    """All Table 1 metrics of one model variant on the test split (clip i of ``gen`` pairs with clip i of ``gt``).

    Returns a dict with every key of :data:`METRIC_NAMES`; a metric whose inputs are not given
    (no spectrograms / no waveforms) is NaN, so a table never silently drops a column.
    """
    if gen.logits.shape[0] != gt.logits.shape[0] or labels.shape[0] != gt.logits.shape[0]:
        raise ValueError(
            f"generated ({gen.logits.shape[0]}), ground-truth ({gt.logits.shape[0]}) and labels ({labels.shape[0]}) must be paired"
        )
    pred = gen.logits.argmax(dim=-1)  # (N,)
    kid_mean, kid_std = kid(gt.features, gen.features, kid_subsets, kid_subset_size, kid_degree, seed)
    out = {
        "fid": fid(gt.features, gen.features),
        "kid_mean": kid_mean,
        "kid_std": kid_std,
        "kl": kl_divergence(gen.logits, gt.logits),
        "acc": accuracy(pred, labels, num_classes),
        "balanced_acc": balanced_accuracy(pred, labels, num_classes),
        "spec_mse": spectrogram_mse(gen_specs, gt_specs) if gen_specs is not None and gt_specs is not None else math.nan,
        "mrstft": mrstft_distance(gen_audio, gt_audio) if gen_audio is not None and gt_audio is not None else math.nan,
    }
    return out
