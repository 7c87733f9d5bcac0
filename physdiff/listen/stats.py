"""The statistics of the listening-study report: intervals for selection rates, and agreement.

- :func:`wilson_interval`: the Wilson score interval of k successes in n answers (Wilson 1927). It
  treats every answer as independent, which understates the spread when participants differ.
- :func:`participant_bootstrap`: a percentile bootstrap that resamples *participants* with
  replacement (their answers stay together), so between-participant variation widens the interval.
  Both are printed; where they disagree, participants disagree.
- :func:`krippendorff_alpha_nominal`: agreement between participants on which method they picked,
  for nominal categories and any number of raters per unit (units with one rating drop out), so a
  participant who stops half-way does not break it (Krippendorff 2011, "Computing Krippendorff's
  alpha-reliability"). alpha = 1 - D_o / D_e = (A_o - A_e) / (1 - A_e), with A_o the share of
  agreeing pairs of ratings within units and A_e the share expected from the pooled choices.
- :func:`fleiss_kappa`: Fleiss' kappa (1971), the classic statistic when every unit has the same
  number of raters; reported beside alpha when the data allow it.

    wilson_interval(7, 10)                                  # (0.3968, 0.8922)
    participant_bootstrap(counts, totals, n_boot=2000)      # (lo (M,), hi (M,))
    krippendorff_alpha_nominal([["ours", "ours"], ["video", "ours"]]).alpha
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Hashable, Sequence

import numpy as np

Z95 = 1.959963984540054  # the standard normal's 97.5 % quantile


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion k/n (NaNs when n == 0)."""
    if n <= 0:
        return math.nan, math.nan
    p = k / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    # clamped to contain p: at k = n (or 0) rounding would leave the bound a hair inside it (0.9999999999999999)
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


def participant_bootstrap(counts: np.ndarray, totals: np.ndarray, n_boot: int = 2000, seed: int = 0,
                          level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile intervals of each method's pooled selection rate, resampling participants.

    ``counts`` (P, M): how often participant p picked method m; ``totals`` (P,): their answers to the
    question (participants with none are dropped). Each resample draws P participants with replacement
    and recomputes sum(counts) / sum(totals). Returns (lo (M,), hi (M,)); NaNs when P == 0.
    """
    counts = np.asarray(counts, dtype=np.float64)  # (P, M)
    totals = np.asarray(totals, dtype=np.float64)  # (P,)
    keep = totals > 0
    counts, totals = counts[keep], totals[keep]
    P, M = counts.shape if counts.ndim == 2 else (0, counts.shape[-1])
    if P == 0:
        return np.full(M, np.nan), np.full(M, np.nan)
    rng = np.random.default_rng(seed)
    w = rng.multinomial(P, np.full(P, 1.0 / P), size=n_boot).astype(np.float64)  # (B, P): times each is drawn
    rates = (w @ counts) / (w @ totals)[:, None]  # (B, M)
    a = (1 - level) / 2
    return np.quantile(rates, a, axis=0), np.quantile(rates, 1 - a, axis=0)


@dataclass(frozen=True)
class Agreement:
    alpha: float  # Krippendorff's alpha (nominal); NaN when every rating is the same category
    observed: float  # A_o: share of agreeing pairs of ratings within units
    expected: float  # A_e: share of agreeing pairs expected by chance from the pooled ratings
    units: int  # units with >= 2 ratings (the pairable ones)
    ratings: int  # ratings in those units


def krippendorff_alpha_nominal(units: Sequence[Sequence[Hashable]]) -> Agreement:
    """Krippendorff's alpha for nominal data: ``units[u]`` lists the categories the raters of unit u chose
    (any number per unit; units with fewer than 2 are not pairable and drop out)."""
    pairable = [list(u) for u in units if len(u) >= 2]
    o: Counter = Counter()  # coincidences o_ck: each ordered pair of ratings in unit u weighs 1 / (m_u - 1)
    for u in pairable:
        m = len(u)
        cnt = Counter(u)
        for c, nc in cnt.items():
            for k, nk in cnt.items():
                o[(c, k)] += (nc * (nk - (c == k))) / (m - 1)
    n = sum(o.values())
    if n == 0:
        return Agreement(math.nan, math.nan, math.nan, 0, 0)
    n_c: Counter = Counter()
    for (c, _k), v in o.items():
        n_c[c] += v
    observed = sum(v for (c, k), v in o.items() if c == k) / n
    expected = sum(v * (v - 1) for v in n_c.values()) / (n * (n - 1))
    alpha = math.nan if expected >= 1 else (observed - expected) / (1 - expected)
    return Agreement(alpha, observed, expected, len(pairable), int(round(n)))


def fleiss_kappa(table: np.ndarray) -> float:
    """Fleiss' kappa from ``table`` (N units, K categories) of rating counts; every row must sum to the same
    number of raters n >= 2 (else ValueError). NaN when every rating is the same category."""
    t = np.asarray(table, dtype=np.float64)  # (N, K)
    n = t.sum(axis=1)
    if t.ndim != 2 or t.shape[0] == 0 or not np.all(n == n[0]) or n[0] < 2:
        raise ValueError("Fleiss' kappa needs >= 1 unit and the same number (>= 2) of raters for every unit")
    n0 = n[0]
    p_i = ((t * t).sum(axis=1) - n0) / (n0 * (n0 - 1))  # (N,) agreement within each unit
    p_j = t.sum(axis=0) / t.sum()  # (K,) pooled category shares
    pe = float((p_j * p_j).sum())
    return math.nan if pe >= 1 else (float(p_i.mean()) - pe) / (1 - pe)
