"""Samplers: determinism, DDIM(eta=1) == ancestral DDPM exactly, the eta=0 relation, guidance, step counts."""

import torch

from physdiff.diffusion.samplers import ddim_mean, ddpm_mean, guided_eps, sample_ddim, sample_ddpm
from physdiff.diffusion.schedule import cosine_schedule

SHAPE = (3, 1, 6, 4)


def model_fn(x, t, c):
    """A fixed nonlinear noise predictor that depends on x, t and the condition (float64-friendly)."""
    return torch.tanh(1.3 * x + 0.2 * c.mean(-1).view(-1, 1, 1, 1)) * (0.5 + t.view(-1, 1, 1, 1).to(x.dtype) / 2000)


def _run(sampler, seed, T=1000, **kw):
    sched = cosine_schedule(T)
    cond = torch.linspace(-1, 1, SHAPE[0] * 5, dtype=torch.float64).view(SHAPE[0], 5)
    g = torch.Generator().manual_seed(seed)
    return sampler(model_fn, SHAPE, sched, cond=cond, generator=g, dtype=torch.float64, **kw)


def test_deterministic_for_a_seed():
    for sampler in (sample_ddpm, sample_ddim):
        a, b, c = _run(sampler, 1, T=200, eta=1.0), _run(sampler, 1, T=200, eta=1.0), _run(sampler, 2, T=200, eta=1.0)
        assert torch.equal(a, b) and not torch.allclose(a, c)


def test_ddim_eta1_all_steps_is_ancestral_ddpm():
    # Song et al. (2021) eq. 16: sigma_t(eta=1) = sqrt(beta~_t), and eq. 12's mean then equals the DDPM
    # posterior mean, so with the same model and the same noise the chains coincide step for step.
    for clip in (False, True):
        ddpm = _run(sample_ddpm, 7, eta=1.0, clip_x0=clip)
        ddim = _run(sample_ddim, 7, eta=1.0, clip_x0=clip)
        assert torch.allclose(ddpm, ddim, atol=1e-9, rtol=1e-9), (clip, (ddpm - ddim).abs().max())
    # ... and on any respaced subsequence of timesteps (DDPM's betas recomputed from alpha_bar)
    assert torch.allclose(_run(sample_ddpm, 3, eta=1.0, steps=50), _run(sample_ddim, 3, eta=1.0, steps=50), atol=1e-8)


def test_eta0_is_deterministic_and_differs_from_the_posterior_mean_chain():
    x_init = torch.randn(SHAPE, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    # sigma = 0: nothing after x_T depends on the generator
    for sampler in (sample_ddpm, sample_ddim):
        a = _run(sampler, 1, T=100, eta=0.0, x_init=x_init)
        b = _run(sampler, 2, T=100, eta=0.0, x_init=x_init)
        assert torch.equal(a, b)
    # The maths at eta = 0: DDIM (probability-flow ODE) and DDPM's posterior-mean chain (reverse SDE without
    # its noise) are different maps. Written as x_prev = x_t / sqrt(alpha) + c * eps, a small step has
    # c_DDPM = -beta / (sqrt(alpha) sqrt(1 - a)) and c_DDIM -> -beta / (2 sqrt(1 - a)): a ratio of 2 as beta -> 0.
    x_t = torch.randn(4, dtype=torch.float64)
    eps = torch.randn(4, dtype=torch.float64)
    for ab_prev in (0.9, 0.5, 0.05):
        ratios = []
        for beta in (1e-2, 1e-3, 1e-4):
            ab = ab_prev * (1 - beta)
            x0 = (x_t - (1 - ab) ** 0.5 * eps) / ab**0.5
            base = x_t / (1 - beta) ** 0.5
            c_ddpm = (ddpm_mean(x_t, x0, eps, ab, ab_prev, 0.0) - base) / eps
            c_ddim = (ddim_mean(x_t, x0, eps, ab, ab_prev, 0.0) - base) / eps
            assert torch.allclose(c_ddpm, torch.full_like(c_ddpm, -beta / ((1 - beta) * (1 - ab)) ** 0.5))
            ratios.append((c_ddpm / c_ddim).mean().item())
        assert abs(ratios[-1] - 2.0) < 1e-3 and abs(ratios[-1] - 2) < abs(ratios[0] - 2) + 1e-12, ratios


def test_guidance_combines_conditional_and_null():
    x = torch.randn(2, 1, 4, 4)
    t = torch.tensor([5, 6])
    c, n = torch.randn(2, 3), torch.randn(3)
    e_c, e_u = model_fn(x, t, c), model_fn(x, t, n.expand(2, -1))
    assert torch.allclose(guided_eps(model_fn, x, t, c, n, 1.0), e_c)
    assert torch.allclose(guided_eps(model_fn, x, t, c, n, 0.0), e_u)
    assert torch.allclose(guided_eps(model_fn, x, t, c, n, 3.0), e_u + 3.0 * (e_c - e_u), atol=1e-6)
    sched = cosine_schedule(50)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    plain = sample_ddim(model_fn, (2, 1, 4, 4), sched, cond=c, null_cond=n, guidance_scale=1.0, generator=g())
    guided = sample_ddim(model_fn, (2, 1, 4, 4), sched, cond=c, null_cond=n, guidance_scale=3.0, generator=g())
    assert not torch.allclose(plain, guided)


def test_step_counts_and_clipping():
    calls = []

    def counting(x, t, c):
        calls.append(int(t[0]))
        return model_fn(x, t, c)

    sched = cosine_schedule(1000)
    cond = torch.zeros(1, 5)
    out = sample_ddim(counting, (1, 1, 4, 4), sched, cond=cond, generator=torch.Generator().manual_seed(0), steps=50)
    assert len(calls) == 50 and calls[0] == 999 and calls[-1] == 0
    assert out.abs().max() <= 1.0  # x0 clipped to [-1, 1] as in the official sampler
