"""Samplers: pure functions with one shared signature (k-diffusion / diffusers style).

    x0 = sample_ddpm(model_fn, shape, schedule, cond=c, null_cond=n, guidance_scale=w, generator=g)
    x0 = sample_ddim(model_fn, shape, schedule, cond=c, null_cond=n, guidance_scale=w, generator=g, steps=50)

``model_fn(x_t (B, ...), t (B,) long, cond (B, C)) -> eps_hat (B, ...)`` predicts the noise. Both samplers
walk a descending timestep sequence tau (all T steps, or ``steps`` evenly spaced ones), draw x_T and then one
noise tensor per step except the last from ``generator`` in the same order, so for the same seed they
consume identical noise, and compute their coefficients in float64.

Guidance (Ho & Salimans, 2022, eq. 6): eps = eps(x, null) + w (eps(x, c) - eps(x, null)); w = 1 is plain
conditional sampling (one forward per step), w = 0 unconditional.

How the two relate (Song et al., 2021, "DDIM", eqs. 12 and 16): with sigma_t = eta * sqrt(beta~_t) both
samplers use the same noise level; at eta = 1 DDIM's update equals the DDPM posterior step exactly, so
DDIM(eta=1) over the same timesteps *is* ancestral DDPM. At eta = 0 the two are *different* deterministic
maps: DDIM follows the probability-flow ODE, while DDPM's posterior-mean chain is the reverse SDE with its
noise removed, whose eps-coefficient is, to first order in beta_t, twice DDIM's (-beta / sqrt(1 - a_t)
against -beta / (2 sqrt(1 - a_t))). The tests check both statements.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from physdiff.diffusion.schedule import Schedule, timestep_sequence
from physdiff.logs import progress as progress_iter

ModelFn = Callable[[Tensor, Tensor, Tensor], Tensor]


def guided_eps(model_fn: ModelFn, x: Tensor, t: Tensor, cond: Tensor, null_cond: Tensor | None,
               guidance_scale: float) -> Tensor:
    """Classifier-free guidance: eps_null + w (eps_cond - eps_null), in one batched forward when w != 1."""
    if guidance_scale == 1.0 or null_cond is None:
        if guidance_scale != 1.0:
            raise ValueError("guidance_scale != 1 needs null_cond (the learned null condition)")
        return model_fn(x, t, cond)
    null = null_cond.expand_as(cond) if null_cond.dim() == 1 or null_cond.shape[0] == 1 else null_cond
    if guidance_scale == 0.0:
        return model_fn(x, t, null)
    eps = model_fn(torch.cat([x, x]), torch.cat([t, t]), torch.cat([cond, null]))  # (2B, ...)
    eps_c, eps_u = eps.chunk(2)
    return eps_u + guidance_scale * (eps_c - eps_u)


def _randn(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device, dtype: torch.dtype) -> Tensor:
    gen_device = generator.device if generator is not None else device
    return torch.randn(shape, generator=generator, device=gen_device, dtype=dtype).to(device)


def ddpm_mean(x_t: Tensor, x0: Tensor, eps: Tensor, ab: float, ab_prev: float, sigma: float) -> Tensor:
    """The DDPM posterior mean mu~_t(x_t, x_0) (Ho et al., eq. 7), the mean of the paper's eq. 9.

    With beta = 1 - ab / ab_prev: mu~ = sqrt(ab_prev) beta / (1 - ab) x_0 + sqrt(1 - beta) (1 - ab_prev) / (1 - ab) x_t.
    (``eps`` and ``sigma`` are unused; the signature is shared with :func:`ddim_mean`.)
    """
    beta = 1.0 - ab / ab_prev
    return (ab_prev**0.5 * beta / (1 - ab)) * x0 + ((1 - beta) ** 0.5 * (1 - ab_prev) / (1 - ab)) * x_t


def ddim_mean(x_t: Tensor, x0: Tensor, eps: Tensor, ab: float, ab_prev: float, sigma: float) -> Tensor:
    """DDIM's mean (Song et al., eq. 12): sqrt(ab_prev) x_0 + sqrt(1 - ab_prev - sigma^2) eps."""
    return ab_prev**0.5 * x0 + max(1.0 - ab_prev - sigma**2, 0.0) ** 0.5 * eps


def _sample(kind: str, model_fn: ModelFn, shape: tuple[int, ...], schedule: Schedule, *, cond: Tensor,
            null_cond: Tensor | None, guidance_scale: float, generator: torch.Generator | None, eta: float,
            steps: int | None, clip_x0: bool, x_init: Tensor | None, progress: bool,
            dtype: torch.dtype | None) -> Tensor:
    device = cond.device
    dtype = dtype or (x_init.dtype if x_init is not None else torch.float32)
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    taus = timestep_sequence(schedule.num_timesteps, steps).tolist()
    ab_all = schedule.alphas_cumprod.double().cpu()  # (T,)
    x = x_init.to(device, dtype) if x_init is not None else _randn(tuple(shape), generator, device, dtype)  # (B, ...)
    if x.shape[0] != cond.shape[0]:
        raise ValueError(f"batch of shape {tuple(x.shape)} does not match cond {tuple(cond.shape)}")
    # a nested bar: drawn on a terminal only, never a line per step in a log file
    it = progress_iter(taus, desc=f"{kind} sampling", enabled=progress, terminal_only=True, leave=False)
    for i, t in enumerate(it):
        ab = float(ab_all[t])  # alpha_bar_t
        ab_prev = float(ab_all[taus[i + 1]]) if i + 1 < len(taus) else 1.0  # alpha_bar at the next (smaller) t
        beta = 1.0 - ab / ab_prev  # the step's beta (= schedule beta_t when all T steps are taken)
        var_post = beta * (1.0 - ab_prev) / (1.0 - ab)  # beta~_t, posterior variance (Ho et al., eq. 7)
        sigma = eta * var_post ** 0.5  # eq. 9's noise scale with temperature eta
        tt = torch.full((x.shape[0],), t, device=device, dtype=torch.long)  # (B,)
        eps = guided_eps(model_fn, x, tt, cond, null_cond, guidance_scale).to(dtype)  # (B, ...)
        x0 = (x - (1 - ab) ** 0.5 * eps) / ab ** 0.5  # predicted x_0
        if clip_x0:
            x0 = x0.clamp(-1.0, 1.0)
            eps = (x - ab ** 0.5 * x0) / (1 - ab) ** 0.5  # the noise consistent with the clipped x_0
        mean = (ddpm_mean if kind == "ddpm" else ddim_mean)(x, x0, eps, ab, ab_prev, sigma)
        if i + 1 < len(taus):
            # always draw (also when sigma = 0) so every sampler consumes the same noise stream
            z = _randn(tuple(x.shape), generator, device, dtype)
            x = mean + sigma * z
        else:
            x = mean  # the last step (to alpha_bar = 1) has sigma = 0
    return x


def sample_ddpm(model_fn: ModelFn, shape: tuple[int, ...], schedule: Schedule, *, cond: Tensor,
                null_cond: Tensor | None = None, guidance_scale: float = 1.0,
                generator: torch.Generator | None = None, eta: float = 1.0, steps: int | None = None,
                clip_x0: bool = True, x_init: Tensor | None = None, progress: bool = False,
                dtype: torch.dtype | None = None) -> Tensor:
    """Ancestral DDPM sampling, the paper's eq. 9 (Ho et al., 2020, Algorithm 2):

        x_{t-1} = mu~_t(x_t, x_0_hat) + sigma_t z,   sigma_t = eta * sqrt(beta~_t),   z ~ N(0, I),

    with x_0_hat = (x_t - sqrt(1 - a_t) eps_theta) / sqrt(a_t), clipped to [-1, 1] as in the official code
    (``clip_x0``); eta is the sampling temperature (1 = the posterior variance, 0 = the posterior-mean
    chain). ``steps`` < T respaces the chain on a subsequence of timesteps (Nichol & Dhariwal, 2021,
    Sec. 4) with betas recomputed from alpha_bar. Returns x_0 (B, ...) in [-1, 1] when clipping.
    """
    return _sample("ddpm", model_fn, shape, schedule, cond=cond, null_cond=null_cond,
                   guidance_scale=guidance_scale, generator=generator, eta=eta, steps=steps, clip_x0=clip_x0,
                   x_init=x_init, progress=progress, dtype=dtype)


def sample_ddim(model_fn: ModelFn, shape: tuple[int, ...], schedule: Schedule, *, cond: Tensor,
                null_cond: Tensor | None = None, guidance_scale: float = 1.0,
                generator: torch.Generator | None = None, eta: float = 0.0, steps: int | None = None,
                clip_x0: bool = True, x_init: Tensor | None = None, progress: bool = False,
                dtype: torch.dtype | None = None) -> Tensor:
    """DDIM sampling (Song et al., 2021, eq. 12) on any number of steps:

        x_prev = sqrt(a_prev) x_0_hat + sqrt(1 - a_prev - sigma^2) eps_hat + sigma z,
        sigma = eta * sqrt((1 - a_prev) / (1 - a_t)) * sqrt(1 - a_t / a_prev)   (eq. 16),

    eta = 0 deterministic (default), eta = 1 identical to ancestral DDPM on the same timesteps. When
    x_0_hat is clipped, eps_hat is recomputed from it so the update stays on one consistent (x_0, eps) pair.
    """
    return _sample("ddim", model_fn, shape, schedule, cond=cond, null_cond=null_cond,
                   guidance_scale=guidance_scale, generator=generator, eta=eta, steps=steps, clip_x0=clip_x0,
                   x_init=x_init, progress=progress, dtype=dtype)


SAMPLERS: dict[str, Callable[..., Tensor]] = {"ddpm": sample_ddpm, "ddim": sample_ddim}
