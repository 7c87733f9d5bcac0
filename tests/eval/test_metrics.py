"""Table 1 metrics: FID/KID behave as distances, KL/accuracy on known cases, spectrogram and MR-STFT
distances, and the classifier that feeds them."""

from __future__ import annotations

import math

import pytest
import torch

from physdiff.eval.metrics import (
    METRIC_NAMES,
    ClassifierOutputs,
    accuracy,
    balanced_accuracy,
    classifier_outputs,
    compute_metrics,
    fid,
    kid,
    kl_divergence,
    mrstft_distance,
    spectrogram_mse,
)
from physdiff.models.spec_classifier import SpecClassifier


def _features(n: int, d: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # Correlated, non-isotropic features, like a network's: a random linear mix of Gaussians.
    mix = torch.randn(d, d, generator=torch.Generator().manual_seed(99), dtype=torch.float64) / math.sqrt(d)
    return torch.randn(n, d, generator=g, dtype=torch.float64) @ mix + shift


def test_fid_kid_zero_on_itself_and_monotone_in_shift():
    real = _features(400, 32, seed=0)
    assert fid(real, real) == pytest.approx(0.0, abs=1e-6)
    self_kid, _ = kid(real, real, subsets=20, subset_size=200)
    # Unbiased MMD^2 of a set against itself is ~0 (slightly negative: the diagonal is excluded
    # only within each set); tiny next to any real shift.
    same_dist = kid(real, _features(400, 32, seed=1), subsets=20, subset_size=200)
    shifts = [0.0, 0.25, 0.5, 1.0, 2.0]
    fids = [fid(real, _features(400, 32, seed=1, shift=s)) for s in shifts]
    kids = [kid(real, _features(400, 32, seed=1, shift=s), subsets=20, subset_size=200)[0] for s in shifts]
    assert all(a < b for a, b in zip(fids, fids[1:])), fids
    assert all(a < b for a, b in zip(kids, kids[1:])), kids
    assert abs(self_kid) < 0.02 * kids[-1]
    assert abs(same_dist[0]) < 0.02 * kids[-1]
    # FID's mean term: a shift of s in all 32 dims adds 32 s^2 (covariances equal in distribution).
    assert fids[-1] - fids[0] == pytest.approx(32 * 2.0**2, rel=0.05)


def test_kid_is_seeded_and_subset_capped():
    real, fake = _features(50, 8, seed=0), _features(40, 8, seed=1, shift=0.5)
    a = kid(real, fake, subsets=10, subset_size=1000, seed=3)  # capped to 40 clips
    b = kid(real, fake, subsets=10, subset_size=1000, seed=3)
    assert a == b and a[0] > 0 and a[1] >= 0
    with pytest.raises(ValueError, match="at least 2"):
        fid(real[:1], fake)


def test_kl_accuracy_balanced_accuracy_known_cases():
    logits = torch.randn(12, 4, generator=torch.Generator().manual_seed(0))
    assert kl_divergence(logits, logits) == pytest.approx(0.0, abs=1e-12)
    # One clip, two classes: KL(p || q) with p = (0.5, 0.5), q = (0.9, 0.1) by hand.
    p_logits = torch.tensor([[0.0, 0.0]])
    q_logits = torch.log(torch.tensor([[0.9, 0.1]]))
    expect = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    assert kl_divergence(q_logits, p_logits) == pytest.approx(expect, rel=1e-6)

    target = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 2, 2])
    pred = torch.tensor([0, 0, 0, 0, 0, 0, 0, 0, 2, 1])
    assert accuracy(pred, target, num_classes=4) == pytest.approx(0.7)
    # per-class recall 1, 0, 0.5 over the classes present (class 3 absent: not averaged)
    assert balanced_accuracy(pred, target, num_classes=4) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="labels must be in"):
        accuracy(pred, target + 3, num_classes=4)


def test_spectrogram_mse_and_mrstft():
    a = torch.rand(3, 1, 33, 9, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert spectrogram_mse(a, a) == 0.0
    assert spectrogram_mse(a, a + 0.5) == pytest.approx(0.25)
    g = torch.Generator().manual_seed(1)
    t = torch.arange(4000) / 16000.0
    clean = (torch.sin(2 * math.pi * 440 * t) * torch.exp(-20 * t)).repeat(2, 1)  # (2, T)
    assert mrstft_distance(clean, clean) == pytest.approx(0.0, abs=1e-6)
    near = mrstft_distance(clean + 0.01 * torch.randn(2, 4000, generator=g), clean)
    far = mrstft_distance(clean + 0.3 * torch.randn(2, 4000, generator=g), clean)
    assert 0 < near < far


def test_compute_metrics_end_to_end_with_the_classifier():
    torch.manual_seed(0)
    model = SpecClassifier(num_classes=3, backbone="tiny", width=4)
    gt_specs = torch.rand(16, 1, 33, 9) * 2 - 1  # (N, 1, F, T)
    gen_specs = gt_specs + 0.05 * torch.randn_like(gt_specs)
    labels = torch.arange(16) % 3
    gt = classifier_outputs(model, gt_specs, batch_size=5)
    gen = classifier_outputs(model, gen_specs, batch_size=5)
    assert gt.features.shape == (16, model.num_features) and gt.logits.shape == (16, 3)
    assert model.training  # classifier_outputs ran in eval mode and restored train mode
    m = compute_metrics(gen, gt, labels, 3, gen_specs, gt_specs, kid_subsets=5)
    assert set(m) == set(METRIC_NAMES)
    assert math.isnan(m["mrstft"])  # no waveforms given: NaN, not dropped
    for k in ("fid", "kid_std", "kl", "acc", "balanced_acc", "spec_mse"):
        assert math.isfinite(m[k]) and m[k] >= 0, k
    same = compute_metrics(gt, gt, labels, 3, kid_subsets=5)
    assert same["fid"] == pytest.approx(0.0, abs=1e-6) and same["kl"] == 0.0
    with pytest.raises(ValueError, match="paired"):
        compute_metrics(gen, ClassifierOutputs(gt.logits[:5], gt.features[:5]), labels, 3)


@pytest.mark.parametrize("backbone,shape", [("tiny", (2, 1, 257, 32)), ("resnet50", (2, 1, 64, 44))])
def test_spec_classifier_shapes(backbone, shape):
    model = SpecClassifier(num_classes=10, backbone=backbone)
    logits, feats = model(torch.randn(*shape))
    assert logits.shape == (2, 10)
    assert feats.shape == (2, model.num_features)
    assert model.num_features == (2048 if backbone == "resnet50" else 128)
    first_conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert first_conv.in_channels == 1
