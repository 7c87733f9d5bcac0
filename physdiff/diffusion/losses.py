"""The denoising objective (paper eq. 8): || eps - eps_theta(x_t, t, mu, nu) ||_1, or the same norm on
the velocity v (Salimans & Ho, 2022) when the model predicts v."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from physdiff.diffusion.schedule import Schedule, q_sample, sample_timesteps, v_target

# model_fn(x_t (B, 1, F, N), t (B,) long, cond (B, C)) -> the prediction (B, 1, F, N): eps or v
PREDICTIONS = ("eps", "v")
ModelFn = Callable[[Tensor, Tensor, Tensor], Tensor]


def noise_prediction_loss(
    model_fn: ModelFn,
    x0: Tensor,
    cond: Tensor,
    schedule: Schedule,
    *,
    t: Tensor | None = None,
    noise: Tensor | None = None,
    generator: torch.Generator | None = None,
    kind: str = "l1",
    reduction: str = "mean",
    prediction: str = "eps",
) -> Tensor:
    """Eq. 8 of the paper: E_{t, x_0, eps} || eps - eps_theta(sqrt(a_t) x_0 + sqrt(1 - a_t) eps, t, c) ||_1.

    t ~ U{0..T-1} and eps ~ N(0, I) are drawn from ``generator`` unless given. ``kind`` "l1" is the
    paper's and the official code's loss; "l2" is Ho et al.'s simple loss. ``reduction``: "mean" (a
    scalar) or "none" (one value per sample, (B,), for held-out evaluation per clip). ``prediction``
    "eps" (the paper) compares ``model_fn``'s output with the noise; "v" with v = sqrt(a_t) eps - sqrt(1 - a_t) x_0.
    """
    if prediction not in PREDICTIONS:
        raise ValueError(f"unknown prediction {prediction!r}; one of {PREDICTIONS}")
    b = x0.shape[0]
    if t is None:
        t = sample_timesteps(b, schedule, generator=generator, device=x0.device)  # (B,)
    if noise is None:
        gen_device = generator.device if generator is not None else x0.device
        noise = torch.randn(x0.shape, generator=generator, device=gen_device).to(x0.device, x0.dtype)  # (B, 1, F, N)
    x_t = q_sample(schedule, x0, t, noise)  # (B, 1, F, N)
    pred = model_fn(x_t, t, cond)  # (B, 1, F, N)
    target = noise if prediction == "eps" else v_target(schedule, x0, t, noise)  # (B, 1, F, N)
    if kind == "l1":
        err = (pred.float() - target.float()).abs()
    elif kind == "l2":
        err = (pred.float() - target.float()) ** 2
    else:
        raise ValueError(f"unknown loss kind {kind!r}; 'l1' or 'l2'")
    per_sample = err.flatten(1).mean(1)  # (B,)
    if reduction == "none":
        return per_sample
    if reduction == "mean":
        return per_sample.mean()
    raise ValueError(f"unknown reduction {reduction!r}; 'mean' or 'none'")
