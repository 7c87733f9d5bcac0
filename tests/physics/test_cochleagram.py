"""The cochleagram of the Owens baseline: an invertible ERB filterbank, true Hilbert envelopes, exact
box downsampling, and pure tones landing in the right channel."""

import math

import numpy as np
import pytest
import torch

from physdiff.physics.cochleagram import (
    cochleagram,
    cochleagram_length,
    downsample_mean,
    envelopes,
    erb_filterbank,
    freq_to_erb,
    resynthesize,
    subbands,
)

SR, T = 44100, 11025  # the paper's 0.25 s clip
RATE = 3 * 30000 / 1001  # Owens: 3 envelope samples per 29.97 fps frame


def _tone(freq, sr=SR, n=T, amp=1.0):
    t = torch.arange(n, dtype=torch.float64) / sr
    return (amp * torch.sin(2 * math.pi * freq * t)).float()


@pytest.mark.parametrize("sr, n", [(44100, 11025), (16000, 4000), (16000, 4001)])
def test_filterbank_tiles_the_spectrum(sr, n):
    bank = erb_filterbank(n, sr)
    assert bank.num_channels == 42  # Owens: 40 band-passes + low-pass + high-pass
    power = bank.response.double().square().sum(0)  # (K,)
    assert torch.allclose(power, torch.ones_like(power), atol=1e-6)  # cos^2 + sin^2 on every overlap
    assert (bank.response >= 0).all()
    # band centres equally spaced on the ERB-number scale, from just above fmin to just below Nyquist
    e = freq_to_erb(bank.centers[1:-1].double())
    steps = e[1:] - e[:-1]
    assert torch.allclose(steps, steps.mean().expand_as(steps), rtol=1e-6)
    assert 20 < bank.centers[1] < bank.centers[-2] < sr / 2


def test_subbands_round_trip_reconstructs_the_signal():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, T, generator=g)
    bank = erb_filterbank(T, SR)
    bands = subbands(x, bank)  # (3, 42, T)
    assert bands.shape == (3, 42, T)
    assert (resynthesize(bands, bank) - x).abs().max() < 1e-4
    # and the subband energies add up to the signal's (Parseval with a tiling bank)
    assert torch.allclose(bands.square().sum((1, 2)), x.square().sum(1), rtol=1e-3)


def test_envelope_is_the_hilbert_envelope_of_an_am_tone():
    """An AM tone at a band's centre (where that filter is 1 and its neighbours 0): the band's envelope is
    the modulator itself, (1 + 0.5 cos(2 pi 7 t))."""
    bank = erb_filterbank(T, SR)
    fc = float(bank.centers[20])
    # put the carrier on the rfft grid (4 Hz steps) so no leakage blurs the check
    fc = round(fc * T / SR) * SR / T
    t = torch.arange(T, dtype=torch.float64) / SR
    mod = 1 + 0.5 * torch.cos(2 * math.pi * 7.2 * t)  # 7.2 Hz = 18 rfft bins: also on the grid
    x = (mod * torch.sin(2 * math.pi * fc * t)).float()
    env = envelopes(x, bank)[0]  # (42, T)
    h = float(bank.response[20, round(fc * T / SR)])
    assert h > 0.99
    inner = slice(T // 10, -T // 10)
    assert torch.allclose(env[20, inner].double(), (h * mod)[inner], atol=0.02)
    assert env[20].mean() > 10 * env[18].mean()  # two channels away: nothing


def test_downsample_mean_matches_a_loop_oracle_at_fractional_factors():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 1001, generator=g, dtype=torch.float64)
    for factor in (1.0, 2.5, 7.3, 490.5):
        got = downsample_mean(x, factor).numpy()
        s = math.ceil(1001 / factor - 1e-9)
        assert got.shape == (2, 3, s)
        xn = x.numpy()
        for i in range(s):  # integrate the step function over [i f, min((i+1) f, T)) by hand
            a, b = i * factor, min((i + 1) * factor, 1001)
            total = np.zeros((2, 3))
            for j in range(int(math.floor(a)), int(math.ceil(b))):
                overlap = min(b, j + 1) - max(a, j)
                total += overlap * xn[..., j]
            np.testing.assert_allclose(got[..., i], total / (b - a), rtol=1e-9)


def test_shape_and_rate_of_the_clip_feature():
    assert cochleagram_length(T, SR, RATE) == 23  # 0.25 s at 89.91 Hz = 22.5 -> 23 samples
    assert cochleagram_length(4000, 16000, RATE) == 23
    x = torch.randn(2, T)
    c = cochleagram(x, SR, RATE)
    assert c.shape == (2, 42, 23) and torch.isfinite(c).all() and (c >= 0).all()
    # peak normalisation: the level of the input does not matter
    assert torch.allclose(cochleagram(5 * x, SR, RATE), c, atol=1e-5)


@pytest.mark.parametrize("freq", [150.0, 440.0, 1000.0, 3000.0, 9000.0])
def test_pure_tone_peaks_in_the_channel_nearest_its_frequency(freq):
    bank = erb_filterbank(T, SR)
    c = cochleagram(_tone(freq), SR, RATE, bank=bank)[0]  # (42, 23)
    nearest = int((freq_to_erb(bank.centers[1:-1].double()) - freq_to_erb(freq)).abs().argmin()) + 1
    assert int(c.mean(1).argmax()) == nearest
    # a unit tone within its channel: envelope ~ H(f) <= 1 -> compressed ~ H^0.3, steady in time
    mid = c[nearest, 2:-2]
    assert mid.max() <= 1.01 and mid.min() > 0.8 * mid.max()


def test_decaying_impact_decays_in_its_channel_and_compression_is_a_power():
    t = torch.arange(T, dtype=torch.float64) / SR
    x = (torch.exp(-20 * t) * torch.sin(2 * math.pi * 2000 * t)).float()
    bank = erb_filterbank(T, SR)
    raw = cochleagram(x, SR, RATE, compression=1.0, bank=bank)[0]  # (42, 23)
    comp = cochleagram(x, SR, RATE, compression=0.3, bank=bank)[0]
    k = int(raw.mean(1).argmax())
    assert (raw[k, 1:-1].diff() < 0).all()  # monotone decay (the partial first/last windows excepted)
    assert torch.allclose(comp, raw.clamp_min(0).pow(0.3), atol=1e-5)


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="fmin"):
        erb_filterbank(T, SR, fmin=30000.0)
    with pytest.raises(ValueError, match="samples"):
        subbands(torch.randn(1, 100), erb_filterbank(T, SR))
    with pytest.raises(ValueError, match="compression"):
        cochleagram(torch.randn(1, T), SR, RATE, compression=2.0)
