"""The physics latent mu (paper Sec. 3.3, Fig. 2): five parallel MLPs over the normalised physics priors.

Modal priors f, p, lambda (one value per STFT bin, D of them) and residual priors w, gamma (one per noise band,
M of them) each go through their own MLP with PReLU activations, are concatenated (3*64 + 2*32 = 256) and
projected by a linear layer + tanh to the 256-d mu. The official widths (``ParamsNet`` of the official code,
the ``paper`` preset): D -> 512 -> 512 -> 512 -> 64 for each mode prior (``F_Encoder`` / ``P_Encoder``) and
M -> 64 -> 64 -> 32 for each residual prior (``N_Encoder``: two hidden layers of 64). ``tiny`` keeps its
residual MLPs as wide and deep as its mode MLPs (M -> 128 -> 128 -> 128 -> 16; docs/deviations.md).

The priors are first mapped to about [-1, 1] by :func:`normalize_priors`, the official code's normalisations
restated for this project's units (lambda and gamma in dB/s, see ``physdiff.physics``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass
class PriorNorm:
    """The constants of the normalisation: the STFT that defined the bins and the dB floor."""

    sample_rate: int = 44100
    n_fft: int = 2048
    hop_length: int = 256
    num_frames: int = 44
    floor_db: float = -80.0
    decay_convention: str = "fit"  # how lambda was defined: "fit" (p -> floor) or "t60" (60 / time-to-floor)

    @classmethod
    def from_config(cls, cfg: object) -> "PriorNorm":
        """From a root ``Config`` (audio + physics sections)."""
        a = cfg.audio  # type: ignore[attr-defined]
        return cls(a.sample_rate, a.n_fft, a.hop_length, a.num_frames, a.floor_db, cfg.physics.decay_convention)  # type: ignore[attr-defined]


def normalize_priors(freq: Tensor, power: Tensor, decay: Tensor, res_weight: Tensor, res_decay: Tensor,
                     norm: PriorNorm) -> dict[str, Tensor]:
    """The official normalisations of the five priors, each to about [-1, 1] (or [0, 1]).

    freq (B, D) Hz -> 2 (f - k sr/n_fft) / (sr/n_fft): the offset from bin k's centre in half-bin widths.
    power (B, D) dB in [floor, 0] -> 2 p / floor - 1 (0 dB -> -1, the floor -> +1), clamped to [-1, 1].
    decay (B, D) lambda dB/s -> its time to reach the floor in STFT frames, min-max scaled over
        [0.5, num_frames] to [-1, 1] (official: the frame index of the first floor value). For "fit"
        lambda, the time is (p - floor) / lambda; for "t60", 60 / lambda. lambda <= 0 (never decays) maps
        to +1 like a bin that never reaches the floor.
    res_weight (B, M) in [0, 1] -> unchanged (already sigmoid outputs in the official code).
    res_decay (B, M) gamma dB/s -> its T60 = 60 / gamma s, then (T60 - 1e-5) / 0.5 (official: the residual
        T60 lies in [1e-5, 0.5 + 1e-5] s), clamped to [0, 1].
    """
    d = freq.shape[-1]
    bin_width = norm.sample_rate / norm.n_fft
    centres = torch.arange(d, device=freq.device, dtype=freq.dtype) * bin_width  # (D,)
    f_n = 2 * (freq - centres) / bin_width  # (B, D)
    p_n = (2 * power / norm.floor_db - 1).clamp(-1, 1)  # (B, D)
    lam = decay.clamp_min(1e-6)
    if norm.decay_convention == "fit":
        seconds = (power - norm.floor_db).clamp_min(0) / lam
    elif norm.decay_convention == "t60":
        seconds = 60.0 / lam
    else:
        raise ValueError(f"unknown decay convention {norm.decay_convention!r}; 'fit' or 't60'")
    frames = (seconds * norm.sample_rate / norm.hop_length).clamp(0.5, float(norm.num_frames))  # (B, D)
    l_n = 2 * (frames - 0.5) / (norm.num_frames - 0.5) - 1  # (B, D)
    t60 = 60.0 / res_decay.clamp_min(1e-6)  # (B, M) seconds
    g_n = ((t60 - 1e-5) / 0.5).clamp(0, 1)  # (B, M)
    return {"freq": f_n, "power": p_n, "decay": l_n, "res_weight": res_weight, "res_decay": g_n}


def mlp(d_in: int, hidden: int, d_out: int, depth: int = 3) -> nn.Sequential:
    """``depth`` hidden Linear + PReLU layers, then a Linear to d_out (official: depth 3 for the modes, 2 for w, gamma)."""
    layers: list[nn.Module] = []
    d = d_in
    for _ in range(depth):
        layers += [nn.Linear(d, hidden), nn.PReLU()]
        d = hidden
    layers.append(nn.Linear(d, d_out))
    return nn.Sequential(*layers)


PRIOR_KEYS = ("freq", "power", "decay", "res_weight", "res_decay")


class PhysicsEncoder(nn.Module):
    """Five parallel MLPs (f, p, lambda over D bins; w, gamma over M bands) -> concat -> Linear + tanh -> mu."""

    def __init__(self, num_bins: int, num_bands: int, *, hidden: int = 512, mode_dim: int = 64,
                 res_dim: int = 32, latent_dim: int = 256, depth: int = 3, res_hidden: int = 64,
                 res_depth: int = 2) -> None:
        """``hidden`` / ``depth``: width and number of hidden layers of the f, p, lambda MLPs (official 512, 3);
        ``res_hidden`` / ``res_depth``: the same for the w, gamma MLPs (official 64, 2)."""
        super().__init__()
        self.num_bins, self.num_bands = num_bins, num_bands
        self.freq = mlp(num_bins, hidden, mode_dim, depth)
        self.power = mlp(num_bins, hidden, mode_dim, depth)
        self.decay = mlp(num_bins, hidden, mode_dim, depth)
        self.res_weight = mlp(num_bands, res_hidden, res_dim, res_depth)
        self.res_decay = mlp(num_bands, res_hidden, res_dim, res_depth)
        self.proj = nn.Linear(3 * mode_dim + 2 * res_dim, latent_dim)
        self.latent_dim = latent_dim

    def forward(self, priors: dict[str, Tensor]) -> Tensor:
        """priors: the *normalised* dict of :func:`normalize_priors` ((B, D) x3, (B, M) x2) -> mu (B, latent)."""
        for k in PRIOR_KEYS:
            if k not in priors:
                raise KeyError(f"physics encoder needs prior '{k}' (have {sorted(priors)})")
        want = {"freq": self.num_bins, "power": self.num_bins, "decay": self.num_bins,
                "res_weight": self.num_bands, "res_decay": self.num_bands}
        for k, n in want.items():
            if priors[k].shape[-1] != n:
                raise ValueError(f"prior '{k}' has {priors[k].shape[-1]} values, the encoder expects {n}")
        h = torch.cat([getattr(self, k)(priors[k].float()) for k in PRIOR_KEYS], dim=-1)  # (B, 3*mode + 2*res)
        return torch.tanh(self.proj(h))  # (B, latent)
