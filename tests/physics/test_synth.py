"""Modal synthesis (eq. 4): equals a direct float64 evaluation, differentiable, chunk-invariant."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from physdiff.physics import Modes, estimate_modes, synthesize_modes
from tests.physics.signals import SR, T, eq4_numpy, make_clips, random_modes


def _modes(freq, power, decay, dtype=torch.float64) -> Modes:
    return Modes(*(torch.tensor(a, dtype=dtype) for a in (freq, power, decay)))


def test_matches_eq4_in_float64():
    freq, power, decay = random_modes(3, 8, seed=0, decay_range=(0.0, 2000.0))
    ref = eq4_numpy(freq, power, decay, SR, T)
    out = synthesize_modes(_modes(freq, power, decay), SR, T)
    assert out.shape == (3, T) and out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-10)


def test_float32_close_to_eq4():
    freq, power, decay = random_modes(2, 8, seed=1)
    ref = eq4_numpy(freq, power, decay, SR, T)
    out = synthesize_modes(_modes(freq, power, decay, torch.float32), SR, T)
    assert out.dtype == torch.float32
    # float32 factors; block phases are reduced in float64, so errors stay ~1e-5 of the summed amplitude
    scale = (10 ** (power / 20)).sum(1, keepdims=True)
    assert (np.abs(out.numpy() - ref) / scale).max() < 1e-4


@pytest.mark.parametrize("chunk", [1, 37, 5000])
def test_chunking_does_not_change_result_or_gradients(chunk):
    gen = torch.Generator().manual_seed(0)
    f = (torch.rand(2, 13, generator=gen, dtype=torch.float64) * 5000).requires_grad_()
    p = (-torch.rand(2, 13, generator=gen, dtype=torch.float64) * 30).requires_grad_()
    lam = (torch.rand(2, 13, generator=gen, dtype=torch.float64) * 500).requires_grad_()
    w = torch.randn(2, 2000, generator=gen, dtype=torch.float64)
    ref_out = synthesize_modes(Modes(f, p, lam), SR, 2000, chunk_size=2000)
    ref_grads = torch.autograd.grad((ref_out * w).sum(), (f, p, lam))
    out = synthesize_modes(Modes(f, p, lam), SR, 2000, chunk_size=chunk)
    grads = torch.autograd.grad((out * w).sum(), (f, p, lam))
    torch.testing.assert_close(out, ref_out)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r)


def test_gradcheck_all_three_parameters():
    gen = torch.Generator().manual_seed(1)
    f = (100 + torch.rand(2, 3, generator=gen, dtype=torch.float64) * 2000).requires_grad_()
    p = (-torch.rand(2, 3, generator=gen, dtype=torch.float64) * 10).requires_grad_()
    lam = (torch.rand(2, 3, generator=gen, dtype=torch.float64) * 300).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a, b, c: synthesize_modes(Modes(a, b, c), SR, 64, chunk_size=2), (f, p, lam)
    )


def test_gradients_match_naive_autograd():
    gen = torch.Generator().manual_seed(2)
    f = (torch.rand(3, 20, generator=gen, dtype=torch.float64) * 8000).requires_grad_()
    p = (-torch.rand(3, 20, generator=gen, dtype=torch.float64) * 30).requires_grad_()
    lam = (torch.rand(3, 20, generator=gen, dtype=torch.float64) * 800).requires_grad_()
    t = torch.arange(1500, dtype=torch.float64) / SR
    naive = (10 ** ((p[..., None] - lam[..., None] * t) / 20) * torch.sin(2 * math.pi * f[..., None] * t)).sum(1)
    w = torch.randn(3, 1500, generator=gen, dtype=torch.float64)
    expect = torch.autograd.grad((naive * w).sum(), (f, p, lam))
    got = torch.autograd.grad((synthesize_modes(Modes(f, p, lam), SR, 1500, chunk_size=7) * w).sum(), (f, p, lam))
    for g, e in zip(got, expect):
        torch.testing.assert_close(g, e)


def test_resynthesis_of_estimated_modes_resembles_clip():
    """Round trip audio -> highres modes -> eq. 4: the spectrum comes back (bins near a mode carry it)."""
    freq, power, decay = random_modes(1, 4, seed=3, decay_range=(100.0, 400.0), min_gap_bins=16)
    audio = make_clips(freq, power, decay)
    modes = estimate_modes(audio, SR, method="highres")
    # keep only bins within 6 dB of the loudest: the modes themselves, not their neighbours' leakage
    keep = modes.power > modes.power.amax(1, keepdim=True) - 6.0
    kept = Modes(modes.freq[keep][None], modes.power[keep][None], modes.decay[keep][None])
    out = synthesize_modes(kept, SR, T)
    spec_in = torch.fft.rfft(audio).abs()
    spec_out = torch.fft.rfft(out).abs()
    peaks_in = set(spec_in[0].topk(4).indices.tolist())
    assert len(peaks_in & set(spec_out[0].topk(8).indices.tolist())) >= 3


def test_modes_container():
    x = torch.randn(4, 3, 7)
    m = Modes.from_stacked(x)
    torch.testing.assert_close(m.stack(), x)
    assert len(m) == 4 and m.num_modes == 7
    assert m[1].freq.shape == (1, 7) and m[-1].freq.shape == (1, 7) and m[1:3].freq.shape == (2, 7)
    assert m.to(torch.float64).dtype == torch.float64
    assert Modes.cat([m, m]).batch_size == 8
    with pytest.raises(ValueError):
        Modes(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError):
        synthesize_modes(m, SR, 0)


def test_grouping_over_clips_is_invisible(monkeypatch):
    """Clips are synthesised in memory-bounded (checkpointed) groups; results and gradients are unchanged."""
    import physdiff.physics.synth as synth

    gen = torch.Generator().manual_seed(4)
    f = (torch.rand(5, 30, generator=gen, dtype=torch.float64) * 8000).requires_grad_()
    p = (-torch.rand(5, 30, generator=gen, dtype=torch.float64) * 30).requires_grad_()
    lam = (torch.rand(5, 30, generator=gen, dtype=torch.float64) * 800).requires_grad_()
    whole = synthesize_modes(Modes(f, p, lam), SR, 900)
    g_whole = torch.autograd.grad(whole.square().sum(), (f, p, lam))
    monkeypatch.setattr(synth, "_GROUP_ELEMENTS", 30 * 60 * 2)  # two clips per group
    grouped = synthesize_modes(Modes(f, p, lam), SR, 900)
    g_grouped = torch.autograd.grad(grouped.square().sum(), (f, p, lam))
    torch.testing.assert_close(grouped, whole)
    for a, b in zip(g_grouped, g_whole):
        torch.testing.assert_close(a, b)
    with torch.no_grad():
        torch.testing.assert_close(synthesize_modes(Modes(f, p, lam), SR, 900), whole)
