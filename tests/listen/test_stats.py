"""The report's statistics against published worked examples and scipy's own implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest, bootstrap

from physdiff.listen.stats import fleiss_kappa, krippendorff_alpha_nominal, participant_bootstrap, wilson_interval


@pytest.mark.parametrize("k,n", [(0, 1), (0, 20), (1, 29), (3, 4), (7, 10), (15, 148), (81, 263), (50, 50)])
def test_wilson_matches_scipy(k: int, n: int) -> None:
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson_interval(k, n) == pytest.approx((ci.low, ci.high), abs=1e-12)


def test_wilson_matches_newcombe_1998() -> None:
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table I, method 3.
    assert wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=5e-5)
    assert wilson_interval(15, 148) == pytest.approx((0.0624, 0.1605), abs=5e-5)
    assert wilson_interval(0, 20) == pytest.approx((0.0, 0.1611), abs=5e-5)
    assert all(math.isnan(x) for x in wilson_interval(0, 0))


def test_krippendorff_alpha_matches_krippendorff_2011() -> None:
    # "Computing Krippendorff's alpha-reliability" (2011), the nominal example: 4 observers, 12 units, missing data.
    N = None
    obs = [[1, 2, 3, 3, 2, 1, 4, 1, 2, N, N, N], [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, N, 3],
           [N, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, N], [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, N]]
    units = [[v for v in col if v is not None] for col in zip(*obs)]
    a = krippendorff_alpha_nominal(units)
    assert round(a.alpha, 3) == 0.743
    assert a.units == 11 and a.ratings == 40  # unit 12 has one value: not pairable
    assert a.alpha == pytest.approx((a.observed - a.expected) / (1 - a.expected))


def test_krippendorff_alpha_edge_cases() -> None:
    assert krippendorff_alpha_nominal([["a", "a"], ["b", "b"], ["c", "c"]]).alpha == pytest.approx(1.0)
    assert math.isnan(krippendorff_alpha_nominal([["a", "a"], ["a", "a"]]).alpha)  # no variation: undefined
    assert krippendorff_alpha_nominal([["a"], ["b"]]).units == 0
    # Two raters who always disagree on two categories: below chance.
    assert krippendorff_alpha_nominal([["a", "b"], ["b", "a"], ["a", "b"]]).alpha < 0


def test_fleiss_kappa_matches_the_classic_example() -> None:
    # Fleiss (1971)'s method on the textbook table: 10 subjects, 14 raters, 5 categories -> kappa 0.210.
    t = np.array([[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
                  [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]])
    assert round(fleiss_kappa(t), 3) == 0.210
    with pytest.raises(ValueError):
        fleiss_kappa(np.array([[2, 0], [1, 2]]))  # unequal raters


def test_participant_bootstrap_matches_scipy() -> None:
    rng = np.random.default_rng(1)
    P = 40
    totals = rng.integers(5, 12, size=P)
    counts = np.stack([rng.multinomial(t, p) for t, p in zip(totals, rng.dirichlet([2, 2, 2], size=P))])  # (P, 3)
    lo, hi = participant_bootstrap(counts, totals, n_boot=20000, seed=0)
    for j in range(3):
        ref = bootstrap((counts[:, j].astype(float), totals.astype(float)),
                        lambda s, n, axis=-1: s.sum(axis=axis) / n.sum(axis=axis), paired=True, vectorized=True,
                        method="percentile", n_resamples=20000, random_state=0).confidence_interval
        assert (lo[j], hi[j]) == pytest.approx((ref.low, ref.high), abs=0.006)  # Monte Carlo error of 20000 draws
    rate = counts.sum(axis=0) / totals.sum()
    assert np.all(lo <= rate) and np.all(rate <= hi)


def test_participant_bootstrap_widens_when_participants_disagree() -> None:
    # Same pooled rate (50 %) and answer count; in one study everyone picks half/half, in the other each
    # participant always picks the same method. Only the bootstrap sees the difference; Wilson cannot.
    totals = np.full(20, 10)
    agree = np.tile([5, 5], (20, 1))
    split = np.array([[10, 0], [0, 10]] * 10)
    lo_a, hi_a = participant_bootstrap(agree, totals, seed=0)
    lo_s, hi_s = participant_bootstrap(split, totals, seed=0)
    assert hi_a[0] - lo_a[0] == pytest.approx(0.0)
    assert hi_s[0] - lo_s[0] > 0.3
    lo_e, hi_e = participant_bootstrap(np.zeros((0, 2)), np.zeros(0))
    assert np.isnan(lo_e).all() and np.isnan(hi_e).all()
