"""The cosine schedule (s = 0.008, betas clipped at 0.9999, T = 1000) and the forward process."""

import math

import torch

from physdiff.diffusion.schedule import cosine_schedule, predict_eps, predict_x0, q_sample, timestep_sequence


def test_cosine_schedule_matches_formula_and_clip():
    s = cosine_schedule(1000)
    assert s.num_timesteps == 1000 and s.betas.dtype == torch.float64
    f = lambda t: math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    for t in (0, 1, 250, 500, 900):
        assert math.isclose(s.betas[t].item(), 1 - f(t + 1) / f(t), rel_tol=1e-9)
        if t < 900:
            assert math.isclose(s.alphas_cumprod[t].item(), f(t + 1) / f(0), rel_tol=1e-9)
    assert s.betas.max().item() == 0.9999 and s.betas[-1].item() == 0.9999  # the clip is active at the end
    assert (s.alphas_cumprod.diff() < 0).all() and s.alphas_cumprod_prev[0] == 1
    assert torch.allclose(s.alphas_cumprod, torch.cumprod(1 - s.betas, 0))


def test_forward_process_inverts():
    s = cosine_schedule(100)
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(4, 1, 8, 4, generator=g), torch.randn(4, 1, 8, 4, generator=g)
    t = torch.tensor([0, 10, 50, 99])
    xt = q_sample(s, x0, t, eps)
    assert torch.allclose(predict_x0(s, xt, t, eps)[:3], x0[:3], atol=1e-4)
    assert torch.allclose(predict_eps(s, xt, t, x0), eps, atol=1e-4)


def test_timestep_sequences():
    assert torch.equal(timestep_sequence(10, None), torch.arange(9, -1, -1))
    seq = timestep_sequence(1000, 50)
    assert len(seq) == 50 and seq[0] == 999 and seq[-1] == 0 and (seq.diff() < 0).all()
