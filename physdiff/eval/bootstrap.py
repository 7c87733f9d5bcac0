"""Error bars for every evaluation metric: per-clip scores, a bootstrap over clips, paired differences.

A row of Table 1 is summarised from its clips' scores (:class:`ClipScores`). The intervals come from
resampling the test clips with replacement: the *same* resamples for every row, so the difference between
two rows on the same resampled clips gives a paired interval (Efron & Tibshirani's paired bootstrap)::

    scores = {name: clip_scores(gen_out, gt_out, labels, gen_specs, gt_specs, gen_audio, gt_audio), ...}
    boot = bootstrap(scores, reps=1000, set_reps=200, seed=0, kid=dict(subsets=100, subset_size=40))
    boot.interval("ours", "fid")                # (lo, hi), 95 %
    boot.paired("ours", "video", "acc")         # (diff, lo, hi) of ours - video on the same clips

Per-clip metrics (accuracy, balanced accuracy, KL, spectrogram MSE, MR-STFT) are recomputed on every
resample; the set-level ones (FID, KID) on the first ``set_reps`` resamples (KID with a tenth of its
subsets per resample). A resample's FID is computed exactly from the N x N Gram matrix of the centred
features (:func:`fid_low_rank`), so it costs the same at 2048-d features as at 128-d; the point value is
torchmetrics' (they agree to float precision, ``tests/eval/test_bootstrap.py``).

Intervals are percentile intervals of the replicates after removing the replicates' mean shift from the
point value (``mean(reps) - point``). That shift is ~0 for the per-clip means, but not for FID: a resample
repeats clips, so its fitted Gaussians are narrower and its FID is larger (FID's small-sample bias); a plain
percentile interval would then lie above the value it describes. The shift is removed the same way from
paired differences.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch

# Which way is better, per metric (a difference in the better direction is a win).
LOWER_IS_BETTER = {"fid": True, "kid_mean": True, "kl": True, "spec_mse": True, "mrstft": True,
                   "acc": False, "balanced_acc": False}
SET_METRICS = ("fid", "kid_mean")


@dataclass
class ClipScores:
    """One row's clips against their paired ground truth: (N, ...) tensors, row i = test clip i."""

    features_gen: torch.Tensor  # (N, D) classifier features of the generated clips
    features_gt: torch.Tensor  # (N, D) ... of the recordings
    pred: torch.Tensor  # (N,) classifier prediction on the generated clip
    labels: torch.Tensor  # (N,) material label
    kl: torch.Tensor  # (N,) KL(p_gt || p_gen) per clip
    spec_mse: torch.Tensor  # (N,)
    mrstft: torch.Tensor  # (N,)

    def __len__(self) -> int:
        return int(self.labels.numel())


def clip_scores(gen: Any, gt: Any, labels: torch.Tensor, gen_specs: torch.Tensor | None, gt_specs: torch.Tensor | None,
                gen_audio: torch.Tensor | None, gt_audio: torch.Tensor | None) -> ClipScores:
    """Per-clip scores of one row (``gen`` / ``gt``: :class:`physdiff.eval.metrics.ClassifierOutputs`)."""
    import torch.nn.functional as F

    n = labels.shape[0]
    log_p = F.log_softmax(gt.logits.double(), dim=-1)  # (N, C) the real sound's class distribution
    log_q = F.log_softmax(gen.logits.double(), dim=-1)  # (N, C)
    kl = (log_p.exp() * (log_p - log_q)).sum(-1).clamp_min(0.0)  # (N,)
    nan = torch.full((n,), math.nan, dtype=torch.float64)
    mse = nan if gen_specs is None or gt_specs is None else \
        (gen_specs.double() - gt_specs.double()).square().flatten(1).mean(1)  # (N,)
    mr = nan
    if gen_audio is not None and gt_audio is not None:
        from physdiff.physics import MultiResolutionSTFTLoss

        loss = MultiResolutionSTFTLoss()
        with torch.no_grad():
            mr = torch.tensor([float(loss(gen_audio[i : i + 1].float(), gt_audio[i : i + 1].float())) for i in range(n)],
                              dtype=torch.float64)  # (N,)
    return ClipScores(gen.features.double(), gt.features.double(), gen.logits.argmax(-1), labels.long(), kl, mse, mr)


def fid_low_rank(real: torch.Tensor, fake: torch.Tensor) -> float:
    """The Frechet distance of Gaussians fitted to (N, D) and (M, D) features, exactly, at O(N M D) cost.

    ``Tr((S_r S_g)^(1/2))`` is the sum of the singular values of ``X_r X_g^T / sqrt((N-1)(M-1))`` (X centred):
    the non-zero eigenvalues of S_r S_g are those of that small matrix times its transpose.
    """
    r, f = real.double(), fake.double()
    mu_r, mu_g = r.mean(0), f.mean(0)
    xr, xg = r - mu_r, f - mu_g  # (N, D), (M, D)
    c = math.sqrt((r.shape[0] - 1) * (f.shape[0] - 1))
    tr_r = float(xr.square().sum()) / (r.shape[0] - 1)
    tr_g = float(xg.square().sum()) / (f.shape[0] - 1)
    cross = float(torch.linalg.svdvals(xr @ xg.T).sum()) / c
    return max(float((mu_r - mu_g).square().sum()) + tr_r + tr_g - 2.0 * cross, 0.0)


def summarize(s: ClipScores, idx: torch.Tensor | None = None, *, kid: Mapping[str, Any] | None = None,
              set_metrics: bool = True, seed: int = 0, exact_fid: bool = False) -> dict[str, float]:
    """The row's metrics on clips ``idx`` (all clips when None): the keys of METRIC_NAMES.

    ``exact_fid``: torchmetrics' FID (the reported value); else :func:`fid_low_rank` (the same number, faster).
    """
    from physdiff.data.labels import GREATEST_HITS_MATERIALS
    from physdiff.eval.metrics import balanced_accuracy, fid, kid as kid_fn

    idx = torch.arange(len(s)) if idx is None else idx
    labels, pred = s.labels[idx], s.pred[idx]
    out = {"acc": float((pred == labels).double().mean()),
           "balanced_acc": balanced_accuracy(pred, labels, len(GREATEST_HITS_MATERIALS)),
           "kl": float(s.kl[idx].mean()), "spec_mse": float(s.spec_mse[idx].mean()), "mrstft": float(s.mrstft[idx].mean()),
           "fid": math.nan, "kid_mean": math.nan, "kid_std": math.nan}
    if set_metrics:
        real, fake = s.features_gt[idx], s.features_gen[idx]
        out["fid"] = fid(real, fake) if exact_fid else fid_low_rank(real, fake)
        kw = dict(kid or {})
        m, sd = kid_fn(real, fake, subsets=int(kw.get("subsets", 100)), subset_size=int(kw.get("subset_size", 1000)),
                       degree=int(kw.get("degree", 3)), seed=seed)
        out["kid_mean"], out["kid_std"] = m, sd
    return out


@dataclass
class Bootstrap:
    """Bootstrap replicates of every row's metrics, on shared resamples of the clips."""

    reps: dict[str, dict[str, torch.Tensor]]  # row -> metric -> (R,) replicate values (NaN where not computed)
    level: float = 0.95
    point: dict[str, dict[str, float]] = field(default_factory=dict)  # row -> metric -> value on all clips

    def _q(self, x: torch.Tensor, point: float) -> tuple[float, float]:
        x = x[torch.isfinite(x)]
        if x.numel() < 2 or not math.isfinite(point):
            return math.nan, math.nan
        x = x - (x.mean() - point)  # remove the resampling bias (FID's), see the module docstring
        a = (1.0 - self.level) / 2
        return float(torch.quantile(x, a)), float(torch.quantile(x, 1 - a))

    def interval(self, row: str, metric: str) -> tuple[float, float]:
        return self._q(self.reps[row][metric], self.point[row][metric])

    def paired(self, row: str, other: str, metric: str) -> tuple[float, float, float]:
        """(point difference row - other, lo, hi) on the same resampled clips."""
        d = self.point[row][metric] - self.point[other][metric]
        lo, hi = self._q(self.reps[row][metric] - self.reps[other][metric], d)
        return d, lo, hi

    def verdict(self, row: str, other: str, metric: str) -> str:
        """'better' / 'worse' when the paired interval excludes 0 (in the metric's good direction), else 'tie'."""
        _, lo, hi = self.paired(row, other, metric)
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo <= 0.0 <= hi:
            return "tie"
        lower = LOWER_IS_BETTER[metric]
        return "better" if (hi < 0) == lower else "worse"


def bootstrap(rows: Mapping[str, ClipScores], *, reps: int = 1000, set_reps: int = 200, seed: int = 0,
              kid: Mapping[str, Any] | None = None, level: float = 0.95) -> Bootstrap:
    """Resample the clips ``reps`` times (the same draws for every row) and recompute every metric."""
    n = {len(s) for s in rows.values()}
    if len(n) != 1:
        raise ValueError(f"every row must score the same clips; got sizes {sorted(n)}")
    n_clips = n.pop()
    g = torch.Generator().manual_seed(seed)
    draws = torch.randint(0, n_clips, (reps, n_clips), generator=g)  # (R, N): shared by every row
    kid_small = dict(kid or {})
    kid_small["subsets"] = max(1, int(kid_small.get("subsets", 100)) // 10)  # per replicate: 10x fewer draws
    out: dict[str, dict[str, torch.Tensor]] = {}
    point: dict[str, dict[str, float]] = {}
    for name, s in rows.items():
        point[name] = summarize(s, kid=kid, seed=seed, exact_fid=True)
        vals: dict[str, list[float]] = {}
        for r in range(reps):
            m = summarize(s, draws[r], kid=kid_small, set_metrics=r < set_reps, seed=seed + r)
            for k, v in m.items():
                vals.setdefault(k, []).append(v)
        out[name] = {k: torch.tensor(v, dtype=torch.float64) for k, v in vals.items()}
    return Bootstrap(out, level, point)
