"""Residual noise (eqs. 5-6): band-limited unit-RMS bands, requested decay and weight, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from physdiff.physics import ResidualNoise, band_edges, band_noise, synthesize_residual

SR, T = 44100, 11025


@pytest.mark.parametrize("spacing", ["mel", "log"])
def test_bands_hold_their_band_and_unit_rms(spacing):
    bands = band_noise(100, SR, T, fmin=20.0, spacing=spacing, seed=0)
    assert bands.shape == (100, T) and bands.dtype == torch.float32
    torch.testing.assert_close(bands.pow(2).mean(-1), torch.ones(100), atol=1e-4, rtol=0)
    power = torch.fft.rfft(bands.double()).abs() ** 2  # (M, K)
    # (M, K) the FFT bins each band holds (float32 rounding leaks ~1e-14 elsewhere)
    support = power > 1e-8 * power.amax(-1, keepdim=True)
    df = SR / T
    edges = band_edges(100, SR, 20.0, spacing)
    first = support.float().argmax(-1)  # (M,)
    last = support.shape[1] - 1 - support.flip(-1).float().argmax(-1)  # (M,)
    assert ((power * ~support).sum(-1) < 1e-10 * power.sum(-1)).all()  # no energy out of band
    assert (support.sum(-1) == last - first + 1).all()  # contiguous
    assert (first[1:] == last[:-1] + 1).all()  # disjoint, adjacent: the bands tile [fmin, Nyquist]
    assert first[0] == int(np.ceil(20.0 / df)) and last[-1] == support.shape[1] - 1
    wide = (edges[1:] - edges[:-1]) >= 2 * df  # narrower bands are stretched to the FFT resolution
    if spacing == "mel":
        assert wide.all()
    lo_hz, hi_hz = first.double() * df, last.double() * df
    assert (lo_hz[wide] >= edges[:-1][wide] - 1e-6).all() and (hi_hz[wide] < edges[1:][wide] + df).all()
    # bands tile the spectrum without overlap: pairwise orthogonal
    gram = bands.double() @ bands.double().T / T
    torch.testing.assert_close(gram, torch.eye(100, dtype=torch.float64), atol=1e-4, rtol=0)


def test_band_noise_is_seeded_and_validated():
    a = band_noise(10, SR, 4000, seed=3)
    torch.testing.assert_close(a, band_noise(10, SR, 4000, seed=3))
    assert not torch.allclose(a, band_noise(10, SR, 4000, seed=4))
    with pytest.raises(ValueError, match="do not fit"):
        band_noise(5000, SR, 2000)
    with pytest.raises(ValueError, match="spacing"):
        band_noise(10, SR, 4000, spacing="bark")


def test_residual_has_requested_weight_and_decay():
    bands = band_noise(20, SR, T, seed=0)
    gamma = torch.tensor([[0.0] * 20, [240.0] * 20])
    weight = torch.zeros(2, 20)
    weight[:, 12] = 0.5  # one band only
    out = synthesize_residual(gamma, weight, bands, SR)  # (2, T)
    assert out.shape == (2, T)
    # undamped: RMS = weight (bands are unit RMS)
    assert out[0].pow(2).mean().sqrt().item() == pytest.approx(0.5, rel=1e-3)
    # damped: frame energies fall by gamma dB/s (fit over 512-sample frames)
    frames = out[1, : (T // 512) * 512].reshape(-1, 512)
    level_db = 10 * torch.log10(frames.pow(2).mean(-1)).double()
    tc = (torch.arange(frames.shape[0], dtype=torch.float64) * 512 + 255.5) / SR
    slope = np.polyfit(tc.numpy(), level_db.numpy(), 1)[0]
    assert -slope == pytest.approx(240.0, rel=0.05)
    # level at t = 0 extrapolated: 20 log10(0.5)
    intercept = np.polyfit(tc.numpy(), level_db.numpy(), 1)[1]
    assert intercept == pytest.approx(20 * np.log10(0.5), abs=1.5)


def test_residual_module_gradients_and_buffer():
    module = ResidualNoise(num_bands=16, sample_rate=16000, num_samples=4000, fmin=20.0, spacing="mel", seed=0)
    assert "bands" not in module.state_dict()  # regenerated from the seed, not checkpointed
    gamma = torch.full((3, 16), 100.0, requires_grad=True)
    weight = torch.full((3, 16), 0.3, requires_grad=True)
    out = module(gamma, weight)
    assert out.shape == (3, 4000)
    out.pow(2).sum().backward()
    assert torch.isfinite(gamma.grad).all() and gamma.grad.abs().sum() > 0
    assert torch.isfinite(weight.grad).all() and weight.grad.abs().sum() > 0
    assert (gamma.grad < 0).all()  # more decay -> less energy
    with pytest.raises(ValueError, match=r"\(B, M\)"):
        module(gamma[:, :5], weight[:, :5])
    module64 = module.to(torch.float64)
    assert module64.bands.dtype == torch.float64


def test_modal_plus_residual_official_normalisation():
    """normalize_modal=True (official): the residual is added to the unit-peak modal signal, so the same
    (w, gamma) give the same sound whatever the modal part's level; False adds it to the raw eq.-4 sum,
    where the modal level changes what w means. Both results are peak-normalised."""
    from physdiff.physics import modal_plus_residual, peak_normalize

    g = torch.Generator().manual_seed(0)
    modal = torch.randn(3, 2000, generator=g, dtype=torch.float64) * torch.tensor([[0.1], [1.0], [30.0]], dtype=torch.float64)
    resid = 0.2 * torch.randn(3, 2000, generator=g, dtype=torch.float64)
    off = modal_plus_residual(modal, resid, normalize_modal=True)
    raw = modal_plus_residual(modal, resid, normalize_modal=False)
    torch.testing.assert_close(off, peak_normalize(peak_normalize(modal) + resid))
    torch.testing.assert_close(raw, peak_normalize(modal + resid))
    assert torch.allclose(off.abs().amax(-1), torch.ones(3, dtype=torch.float64))
    # scaling the modal part changes nothing with the official normalisation, and a lot without it
    torch.testing.assert_close(modal_plus_residual(modal * 7.0, resid, normalize_modal=True), off)
    assert (modal_plus_residual(modal * 7.0, resid, normalize_modal=False) - raw).abs().max() > 0.05
