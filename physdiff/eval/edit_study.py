"""Measured effects of the two sound edits of the paper's project page (its conclusion's editing demos).

- **Fix the physics priors to another material** (``fix_physics_priors_<material>``): a test clip keeps its
  visual latent nu, but the physics latent mu is taken from a training clip of the chosen material (the one
  nearest by nu among that material's clips, :func:`nearest_of_material`), and the diffusion model samples
  from c = [mu_M, nu']. The effect is how often the metric classifier then hears the target material
  (:func:`follow_rate`), beside how often it does without the edit.
- **Remove low-frequency modes** (``physics_priors_remove_low_freq``): modes below a cutoff are muted
  (``EditSpec(mute_hz=[0, cutoff])``, :mod:`physdiff.eval.editing`). The effect is the drop of the spectral
  energy below the cutoff and the change of the energy above it (:func:`band_energies`, :func:`level_change`),
  on the direct resynthesis and on the diffusion model's output.

Pure functions on tensors; ``physdiff edit --study`` (:mod:`physdiff.cli.edit_study`) runs them over the
test clips of trained runs::

    mu_m, rows = nearest_of_material(index_nu, index_mu, index_materials, nu_test, material=3)
    r = follow_rate(pred_labels, true_labels, target=3)          # {"rate", "ci", "followed", "clips"}
    below, above = band_energies(magnitude, freqs, cutoff_hz=500.0)
    drop = level_change(below_before, below_after)                # {"mean_db", "ci_db", ...}
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from physdiff.listen.stats import wilson_interval  # the one implementation (the listening study's)


def nearest_of_material(keys: Tensor, values: Tensor, materials: Tensor, query_nu: Tensor, material: int
                        ) -> tuple[Tensor, Tensor]:
    """For each query nu (B, D): the value (B, L) and row (B,) of the nearest (Euclidean) training clip *of material*.

    ``keys`` (N, D) nu of the training clips, ``values`` (N, L) their latents (an index's rows), ``materials``
    (N,) their labels. A ValueError when no training clip has that material.
    """
    from physdiff.retrieval import query

    rows = (materials.to(keys.device) == material).nonzero().flatten()  # (N_m,)
    if rows.numel() == 0:
        raise ValueError(f"no training clip of material {material}")
    _d, idx = query(keys[rows], query_nu.to(keys.device).float(), k=1)  # (B, 1)
    picked = rows[idx[:, 0].to(rows.device)]  # (B,)
    return values[picked], picked


def follow_rate(pred: Tensor, truth: Tensor, target: int) -> dict[str, Any]:
    """Share of the clips *not* of ``target`` that the classifier assigns to ``target`` (with a Wilson 95 % interval)."""
    keep = truth != target
    n = int(keep.sum())
    k = int((pred[keep] == target).sum()) if n else 0
    lo, hi = wilson_interval(k, n)
    return {"clips": n, "followed": k, "rate": k / n if n else math.nan, "ci": [lo, hi]}


def band_energies(magnitude: Tensor, freqs: Tensor, cutoff_hz: float) -> tuple[Tensor, Tensor]:
    """Energy (sum of |S|^2 over bins and frames) below and at/above ``cutoff_hz``: (B,), (B,).

    ``magnitude`` (B, F, N) linear STFT magnitude, ``freqs`` (F,) the bins' centre frequencies.
    """
    power = magnitude.double().square()  # (B, F, N)
    low = (freqs < cutoff_hz).to(power.device)  # (F,)
    return power[:, low].sum((1, 2)), power[:, ~low].sum((1, 2))


def audio_band_energies(audio: Tensor, sample_rate: float, n_fft: int, hop_length: int, cutoff_hz: float
                        ) -> tuple[Tensor, Tensor]:
    """:func:`band_energies` of audio (B, T) on the STFT grid (n_fft, hop)."""
    from physdiff.physics.spectral import bin_centers, stft_magnitude

    mag = stft_magnitude(audio.double(), n_fft, hop_length)  # (B, F, N)
    return band_energies(mag, bin_centers(n_fft, sample_rate, mag), cutoff_hz)


def spectrogram_band_energies(x: Tensor, audio_cfg: Any, cutoff_hz: float) -> tuple[Tensor, Tensor]:
    """:func:`band_energies` of normalised log-magnitude spectrograms (B, 1, F, N), as the diffusion model samples them."""
    from physdiff.physics.spectral import bin_centers, denormalize_spectrogram

    logmag = denormalize_spectrogram(x.double().squeeze(1), audio_cfg)  # (B, F, N): log(|S| + eps)
    mag = (logmag.exp() - audio_cfg.spec_log_eps).clamp_min(0.0)  # (B, F, N)
    return band_energies(mag, bin_centers(audio_cfg.n_fft, audio_cfg.sample_rate, mag), cutoff_hz)


def level_change(before: Tensor, after: Tensor, reps: int = 1000, seed: int = 0, floor: float = 1e-30
                 ) -> dict[str, Any]:
    """Per-clip 10 log10(after / before) in dB: mean, median, its 95 % bootstrap interval over clips, extremes."""
    db = 10.0 * torch.log10(after.double().clamp_min(floor) / before.double().clamp_min(floor))  # (B,)
    g = torch.Generator().manual_seed(seed)
    n = db.numel()
    means = db[torch.randint(0, n, (reps, n), generator=g)].mean(1) if n else torch.zeros(0, dtype=torch.float64)
    ci = [float(means.quantile(0.025)), float(means.quantile(0.975))] if n else [math.nan, math.nan]
    return {"clips": n, "mean_db": float(db.mean()) if n else math.nan,
            "median_db": float(db.median()) if n else math.nan, "ci_db": ci,
            "min_db": float(db.min()) if n else math.nan, "max_db": float(db.max()) if n else math.nan}
