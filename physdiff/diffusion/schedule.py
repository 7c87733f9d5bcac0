"""The DDPM noise schedule and the forward process, as pure functions.

Notation of Ho et al. (2020), used by the paper (Su et al., 2023, Sec. 3.4): beta_t, alpha_t = 1 - beta_t,
alpha_bar_t = prod_{s<=t} alpha_s. Timesteps are indexed 0 .. T-1 (index t is the paper's t + 1), and
"alpha_bar_{-1}" = 1 is the clean signal.

The official code uses the cosine schedule of Nichol & Dhariwal (2021, eq. 17) with s = 0.008, betas
clipped at 0.9999 and T = 1000.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import Tensor


@dataclass(frozen=True)
class Schedule:
    """Precomputed float64 schedule tensors (length T). Cast to the sample's dtype where used."""

    betas: Tensor  # (T,)
    alphas_cumprod: Tensor  # (T,) alpha_bar_t
    alphas_cumprod_prev: Tensor  # (T,) alpha_bar_{t-1}, with alpha_bar_{-1} = 1

    @property
    def num_timesteps(self) -> int:
        return int(self.betas.shape[0])

    @property
    def device(self) -> torch.device:
        return self.betas.device

    def to(self, device: torch.device | str) -> "Schedule":
        return Schedule(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


def cosine_alphas_cumprod(timesteps: int, s: float = 0.008) -> Tensor:
    """alpha_bar(t) = f(t) / f(0), f(t) = cos^2(((t/T) + s) / (1 + s) * pi/2) (Nichol & Dhariwal, eq. 17).

    Returns the T + 1 values at t = 0 .. T (float64); index 0 is 1.
    """
    t = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps  # (T+1,)
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    return f / f[0]


def cosine_schedule(timesteps: int = 1000, s: float = 0.008, max_beta: float = 0.9999) -> Schedule:
    """The official schedule: betas_t = 1 - alpha_bar(t+1)/alpha_bar(t), clipped to [0, max_beta].

    alpha_bar is recomputed as the cumulative product of the *clipped* betas, so every quantity the
    samplers use is consistent with one Markov chain (the last, clipped, step included).
    """
    if timesteps < 1:
        raise ValueError(f"timesteps must be >= 1, got {timesteps}")
    ab = cosine_alphas_cumprod(timesteps, s)  # (T+1,)
    betas = (1 - ab[1:] / ab[:-1]).clamp(0.0, max_beta)  # (T,)
    alphas_cumprod = torch.cumprod(1 - betas, dim=0)  # (T,)
    prev = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]])  # (T,)
    return Schedule(betas=betas, alphas_cumprod=alphas_cumprod, alphas_cumprod_prev=prev)


def schedule_from_config(cfg: object) -> Schedule:
    """The schedule named by a ``DiffusionConfig`` (only the official cosine schedule exists)."""
    if getattr(cfg, "schedule") != "cosine":
        raise ValueError(f"unknown schedule {getattr(cfg, 'schedule')!r}; only 'cosine'")
    return cosine_schedule(cfg.timesteps, cfg.cosine_s, cfg.max_beta)  # type: ignore[attr-defined]


def _gather(values: Tensor, t: Tensor, like: Tensor) -> Tensor:
    """values[t] shaped to broadcast against ``like`` (B, ...), in its dtype and device."""
    out = values.to(like.device)[t.to(like.device)].to(like.dtype)  # (B,)
    return out.view(-1, *([1] * (like.dim() - 1)))


def q_sample(schedule: Schedule, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
    """Forward process q(x_t | x_0): x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps (Ho et al., eq. 4)."""
    ab = _gather(schedule.alphas_cumprod, t, x0)  # (B, 1, ..., 1)
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise


def predict_x0(schedule: Schedule, x_t: Tensor, t: Tensor, eps: Tensor) -> Tensor:
    """x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t): eq. 4 inverted for a predicted eps."""
    ab = _gather(schedule.alphas_cumprod, t, x_t)
    return (x_t - (1 - ab).sqrt() * eps) / ab.sqrt()


def predict_eps(schedule: Schedule, x_t: Tensor, t: Tensor, x0: Tensor) -> Tensor:
    """eps = (x_t - sqrt(alpha_bar_t) x_0) / sqrt(1 - alpha_bar_t): the noise implied by an x_0."""
    ab = _gather(schedule.alphas_cumprod, t, x_t)
    return (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()


def v_target(schedule: Schedule, x0: Tensor, t: Tensor, eps: Tensor) -> Tensor:
    """The velocity v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x_0 (Salimans & Ho, 2022, Sec. 4)."""
    ab = _gather(schedule.alphas_cumprod, t, x0)
    return ab.sqrt() * eps - (1 - ab).sqrt() * x0


def eps_from_v(schedule: Schedule, x_t: Tensor, t: Tensor, v: Tensor) -> Tensor:
    """eps = sqrt(alpha_bar_t) v + sqrt(1 - alpha_bar_t) x_t: the noise a v-prediction implies.

    Exact algebra, no division: at the pure-noise end (alpha_bar ~ 1e-10) eps -> x_t and the implied
    x_0 = sqrt(alpha_bar) x_t - sqrt(1 - alpha_bar) v -> -v, a bounded regression target, which is why
    v-prediction learns the high-noise end much faster than eps-prediction.
    """
    ab = _gather(schedule.alphas_cumprod, t, x_t)
    return ab.sqrt() * v + (1 - ab).sqrt() * x_t


def sample_timesteps(batch: int, schedule: Schedule, *, generator: torch.Generator | None = None,
                     device: torch.device | str | None = None) -> Tensor:
    """t ~ Uniform{0, ..., T-1} (the training distribution of eq. 8)."""
    t = torch.randint(0, schedule.num_timesteps, (batch,), generator=generator,
                      device=generator.device if generator is not None else device)  # (B,)
    return t.to(device) if device is not None else t


def timestep_sequence(num_timesteps: int, steps: int | None) -> Tensor:
    """Descending timesteps tau for a sampler: all T (steps None or T), else ``steps`` evenly spaced
    indices from T-1 down to 0 (both ends included, so sampling starts from pure noise and ends clean).
    """
    if steps is None or steps == num_timesteps:
        return torch.arange(num_timesteps - 1, -1, -1)
    if not 1 <= steps <= num_timesteps:
        raise ValueError(f"steps must be in [1, {num_timesteps}], got {steps}")
    if steps == 1:
        return torch.tensor([num_timesteps - 1])
    seq = torch.linspace(0, num_timesteps - 1, steps, dtype=torch.float64).round().long()
    return seq.unique().flip(0)  # (S,) descending
