"""Error bars: the exact low-rank FID equals torchmetrics', bootstrap intervals cover what they should,
paired differences call a tie a tie, and KID on subsets of half the clips has a real spread."""

from __future__ import annotations

import math

import pytest
import torch

from physdiff.eval.bootstrap import ClipScores, bootstrap, fid_low_rank, summarize
from physdiff.eval.metrics import fid, kid


def _feats(n: int, d: int, shift: float = 0.0, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64) + shift


@pytest.mark.parametrize("n,d", [(40, 16), (30, 128), (12, 300)])
def test_low_rank_fid_equals_torchmetrics(n: int, d: int) -> None:
    a, b = _feats(n, d, 0.0, 1), _feats(n + 3, d, 0.3, 2) * 1.2
    assert fid_low_rank(a, b) == pytest.approx(fid(a, b), rel=1e-6, abs=1e-8)
    assert fid_low_rank(a, a) == pytest.approx(0.0, abs=1e-8)


def _scores(n: int, acc: float, seed: int, shift: float = 0.0) -> ClipScores:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (n,), generator=g)
    right = torch.rand(n, generator=g) < acc
    pred = torch.where(right, labels, (labels + 1) % 4)
    gt = _feats(n, 8, 0.0, 100)
    return ClipScores(_feats(n, 8, shift, seed), gt, pred, labels, torch.rand(n, generator=g, dtype=torch.float64),
                      torch.rand(n, generator=g, dtype=torch.float64), torch.rand(n, generator=g, dtype=torch.float64))


def test_intervals_cover_the_point_and_shrink_with_more_clips() -> None:
    small = bootstrap({"a": _scores(40, 0.7, 0)}, reps=400, set_reps=50, seed=0, kid={"subsets": 20, "subset_size": 20})
    big = bootstrap({"a": _scores(400, 0.7, 0)}, reps=400, set_reps=50, seed=0, kid={"subsets": 20, "subset_size": 200})
    for b in (small, big):
        for m in ("acc", "balanced_acc", "kl", "spec_mse", "mrstft", "fid", "kid_mean"):
            lo, hi = b.interval("a", m)
            assert lo <= b.point["a"][m] <= hi, (m, lo, b.point["a"][m], hi)
    w = lambda b: b.interval("a", "acc")[1] - b.interval("a", "acc")[0]  # noqa: E731
    assert w(big) < 0.5 * w(small)  # ~ 1/sqrt(10) narrower
    # the accuracy interval is about +-1.96 sqrt(p(1-p)/n) wide
    p = big.point["a"]["acc"]
    assert w(big) == pytest.approx(2 * 1.96 * math.sqrt(p * (1 - p) / 400), rel=0.25)


def test_paired_difference_separates_real_gaps_from_noise() -> None:
    base = _scores(200, 0.5, 1)
    better = ClipScores(base.features_gen, base.features_gt, base.labels.clone(), base.labels, base.kl * 0.5,
                        base.spec_mse, base.mrstft)  # always right, half the KL
    same = ClipScores(base.features_gen, base.features_gt, base.pred, base.labels, base.kl, base.spec_mse, base.mrstft)
    b = bootstrap({"base": base, "better": better, "same": same}, reps=300, set_reps=30, seed=0,
                  kid={"subsets": 20, "subset_size": 100})
    assert b.verdict("better", "base", "acc") == "better" and b.verdict("better", "base", "kl") == "better"
    assert b.verdict("base", "better", "acc") == "worse"
    for m in ("acc", "kl", "fid", "spec_mse"):
        assert b.verdict("same", "base", m) == "tie"  # identical clips: a zero difference is a tie
    d, lo, hi = b.paired("better", "base", "acc")
    assert d == pytest.approx(1 - b.point["base"]["acc"]) and lo <= d <= hi


def test_kid_on_half_size_subsets_has_a_real_spread() -> None:
    a, c = _feats(60, 16, 0.0, 3), _feats(60, 16, 0.5, 4)
    m_full, s_full = kid(a, c, subsets=50, subset_size=60, seed=0)  # subsets == the whole set: no spread
    m_half, s_half = kid(a, c, subsets=50, subset_size=30, seed=0)
    assert s_full < 1e-12 and s_half > 1e-4 and m_half == pytest.approx(m_full, rel=0.5)
    row = summarize(_scores(60, 0.5, 5, shift=0.5), kid={"subsets": 50, "subset_size": 30})
    assert row["kid_std"] > 0
