"""Eq. 8: the L1 noise-prediction loss, and that it falls when a small denoiser overfits real spectrograms."""

import math

import torch

from physdiff.config import resolve_config
from physdiff.diffusion.losses import noise_prediction_loss
from physdiff.diffusion.schedule import cosine_schedule
from physdiff.models.denoiser import PhysicsDiffusion


def test_l1_of_zero_predictor_is_mean_abs_noise():
    s = cosine_schedule(100)
    x0 = torch.zeros(64, 1, 16, 8)
    g = torch.Generator().manual_seed(0)
    loss = noise_prediction_loss(lambda x, t, c: torch.zeros_like(x), x0, torch.zeros(64, 1), s, generator=g)
    assert abs(loss.item() - math.sqrt(2 / math.pi)) < 0.01  # E|N(0,1)|
    per = noise_prediction_loss(lambda x, t, c: torch.zeros_like(x), x0, torch.zeros(64, 1), s, generator=g, reduction="none")
    assert per.shape == (64,)


def _clips(cfg, n, seed=0):
    """Real spectrograms of damped two-mode impacts at the tiny STFT, normalised like the stage's input."""
    a = cfg.audio
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(a.num_samples) / a.sample_rate
    f = 300 + 3000 * torch.rand(n, 2, 1, generator=g)
    lam = 100 + 400 * torch.rand(n, 2, 1, generator=g)  # dB/s
    audio = (10 ** (-lam * t / 20) * torch.sin(2 * math.pi * f * t)).sum(1)  # (n, T)
    audio = audio / audio.abs().amax(-1, keepdim=True)
    mag = torch.stft(audio, a.n_fft, a.hop_length, window=torch.hann_window(a.n_fft), return_complex=True).abs()
    spec = (torch.log(mag + a.spec_log_eps) - a.spec_min) / (a.spec_max - a.spec_min) * 2 - 1  # (n, F, N)
    return spec[:, None], f.squeeze(-1), lam.squeeze(-1)


def test_loss_falls_on_a_tiny_overfit_set():
    torch.manual_seed(0)
    cfg = resolve_config("debug", ["diffusion.variant=video", "diffusion.cond_dropout=0.1", "audio.n_fft=128"])
    model = PhysicsDiffusion.from_config(cfg, nu_dim=16)
    x0, f, lam = _clips(cfg, 8)
    assert x0.shape[-2:] == (cfg.audio.num_bins, cfg.audio.num_frames)
    inputs = {"nu": torch.cat([f, lam], -1).repeat(1, 4) / 1000}  # (8, 16): a visual code of the clip
    ev = torch.Generator().manual_seed(123)  # a fixed evaluation draw of (t, eps), so losses compare
    t_eval = torch.randint(0, cfg.diffusion.timesteps, (8,), generator=ev)
    eps_eval = torch.randn(x0.shape, generator=ev)

    def eval_loss():
        model.eval()
        with torch.no_grad():
            cond = model.conditioner(inputs)
            return noise_prediction_loss(model.eps, x0, cond, model.schedule, t=t_eval, noise=eps_eval).item()

    before = eval_loss()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(40):
        loss = model(x0, inputs, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.train()
    after = eval_loss()
    assert after < 0.6 * before, (before, after)


def test_v_prediction_round_trips_to_the_noise_and_x0():
    """v = sqrt(a) eps - sqrt(1 - a) x0 and eps_from_v invert each other at every t, the ends included."""
    from physdiff.diffusion.schedule import eps_from_v, predict_x0, q_sample, v_target

    s = cosine_schedule(1000)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(6, 1, 8, 4, generator=g, dtype=torch.float64) * 2 - 1
    eps = torch.randn(6, 1, 8, 4, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 1, 250, 500, 998, 999])
    x_t = q_sample(s, x0, t, eps)
    v = v_target(s, x0, t, eps)
    torch.testing.assert_close(eps_from_v(s, x_t, t, v), eps, atol=1e-9, rtol=0)
    torch.testing.assert_close(predict_x0(s, x_t[:4], t[:4], eps[:4]), x0[:4])
    # at the pure-noise end the x0 a v-model implies stays bounded: x0 = sqrt(a) x_t - sqrt(1 - a) v
    ab = s.alphas_cumprod[t].view(-1, 1, 1, 1)
    torch.testing.assert_close(ab.sqrt() * x_t - (1 - ab).sqrt() * v, x0, atol=1e-9, rtol=0)


def test_v_loss_is_zero_for_the_oracle_and_the_model_hands_samplers_eps():
    s = cosine_schedule(100)
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(16, 1, 8, 4, generator=g) * 2 - 1
    t = torch.randint(0, 100, (16,), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    from physdiff.diffusion.schedule import v_target

    oracle = lambda x, tt, c: v_target(s, x0, tt, noise)  # noqa: E731
    assert noise_prediction_loss(oracle, x0, torch.zeros(16, 1), s, t=t, noise=noise, prediction="v").item() < 1e-6
    assert noise_prediction_loss(oracle, x0, torch.zeros(16, 1), s, t=t, noise=noise).item() > 0.1  # scored as eps: wrong

    cfg = resolve_config("debug", ["diffusion.variant=video", "diffusion.prediction=v", "audio.n_fft=128"])
    model = PhysicsDiffusion.from_config(cfg, nu_dim=16).eval()
    x = torch.randn(2, 1, cfg.audio.num_bins, cfg.audio.num_frames)
    tt = torch.tensor([3, 90])
    cond = model.conditioner({"nu": torch.randn(2, 16)})
    with torch.no_grad():
        v = model.predict(x, tt, cond)
        ab = model.schedule.alphas_cumprod[tt].float().view(-1, 1, 1, 1)
        torch.testing.assert_close(model.eps(x, tt, cond), ab.sqrt() * v + (1 - ab).sqrt() * x)
