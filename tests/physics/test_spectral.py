"""Spectrogram helpers: shapes at the paper's settings, agreement with a numpy STFT, dB and
normalisation conventions, Griffin-Lim."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from physdiff.config import AudioConfig
from physdiff.physics import (
    MultiResolutionSTFTLoss,
    db_spectrogram,
    denormalize_spectrogram,
    griffin_lim,
    log_magnitude,
    normalize_spectrogram,
    peak_normalize,
    stft_magnitude,
)
from tests.physics.reference_estimator import reference_db, reference_stft_magnitude
from tests.physics.signals import make_clips, random_modes


@pytest.fixture(scope="module")
def clip() -> torch.Tensor:
    freq, power, decay = random_modes(2, 5, seed=0, decay_range=(50.0, 400.0))
    return make_clips(freq, power, decay, snr_db=40.0, dtype=torch.float64)


def test_paper_shapes_and_numpy_agreement(clip):
    cfg = AudioConfig()
    mag = stft_magnitude(clip, cfg.n_fft, cfg.hop_length)
    assert mag.shape == (2, 1025, 44) == (2, cfg.num_bins, cfg.num_frames)
    np.testing.assert_allclose(mag[1].numpy(), reference_stft_magnitude(clip[1].numpy(), 2048, 256), atol=1e-9)
    assert log_magnitude(clip[0].float(), cfg).shape == (1, 1025, 44)


def test_db_spectrogram_conventions(clip):
    db = db_spectrogram(clip, 2048, 256, -80.0)
    assert torch.allclose(db.amax(dim=(-2, -1)), torch.zeros(2, dtype=torch.float64))
    assert db.min() >= -80.0
    x = peak_normalize(clip)[0].numpy()
    np.testing.assert_allclose(db[0].numpy(), reference_db(reference_stft_magnitude(x, 2048, 256), -80.0), atol=1e-9)
    torch.testing.assert_close(db_spectrogram(clip * 7.0, 2048, 256), db)  # scale-free
    silent = db_spectrogram(torch.zeros(3000), 512, 128, -60.0)
    assert silent.shape == (1, 257, 3000 // 128 + 1) and (silent == -60.0).all()


def test_peak_normalize():
    x = torch.tensor([[0.0, -2.0, 1.0], [0.0, 0.0, 0.0]])
    y = peak_normalize(x)
    torch.testing.assert_close(y, torch.tensor([[0.0, -1.0, 0.5], [0.0, 0.0, 0.0]]))


def test_normalization_round_trip_and_clamp(clip):
    cfg = AudioConfig()
    logmag = log_magnitude(clip.float(), cfg)
    # the official constants bound a peak-normalised clip's log-magnitude
    assert logmag.min() >= cfg.spec_min - 1e-3 and logmag.max() <= cfg.spec_max
    x = normalize_spectrogram(logmag, cfg)
    assert x.min() >= -1 and x.max() <= 1
    torch.testing.assert_close(denormalize_spectrogram(x, cfg), logmag, atol=1e-4, rtol=0)
    silent = normalize_spectrogram(log_magnitude(torch.zeros(1, 11025), cfg), cfg)
    torch.testing.assert_close(silent, torch.full_like(silent, -1.0), atol=1e-5, rtol=0)
    assert normalize_spectrogram(torch.tensor([100.0, -100.0]), cfg, clamp=True).tolist() == [1.0, -1.0]


def test_normalization_is_not_clamped_as_the_official_code():
    """Official: no clamp. A full-scale clip exceeds spec_max at n_fft 2048 (a sinusoid centred on a bin:
    ln(n_fft / 4) -> 1.023; a constant: ln(n_fft / 2) -> 1.080), and the linear map is inverted exactly;
    at tiny's n_fft 512 even the constant stays below 1, so clamping there never changed anything."""
    cfg = AudioConfig()
    t = torch.arange(11025, dtype=torch.float64) / cfg.sample_rate
    sine = torch.sin(2 * math.pi * 100 * cfg.sample_rate / cfg.n_fft * t)[None]  # bin 100, full scale
    const = torch.ones(1, 11025, dtype=torch.float64)
    x_sine = normalize_spectrogram(log_magnitude(sine, cfg), cfg)
    x_const = normalize_spectrogram(log_magnitude(const, cfg), cfg)
    expect = lambda mag: 2 * (math.log(mag + 1e-8) - cfg.spec_min) / (cfg.spec_max - cfg.spec_min) - 1  # noqa: E731
    assert x_sine.max().item() == pytest.approx(expect(cfg.n_fft / 4), abs=1e-3) and x_sine.max() > 1.02
    assert x_const.max().item() == pytest.approx(expect(cfg.n_fft / 2), abs=1e-6) and x_const.max() > 1.07
    assert normalize_spectrogram(log_magnitude(sine, cfg), cfg, clamp=True).max() == 1.0
    torch.testing.assert_close(denormalize_spectrogram(x_const, cfg), log_magnitude(const, cfg))
    tiny = AudioConfig(sample_rate=16000, n_fft=512, hop_length=128)
    worst = normalize_spectrogram(log_magnitude(torch.ones(1, 4000, dtype=torch.float64), tiny), tiny)
    assert worst.max().item() == pytest.approx(expect(tiny.n_fft / 2), abs=1e-6) and worst.max() < 0.97


def test_griffin_lim_recovers_audio(clip):
    cfg = AudioConfig()
    x = peak_normalize(clip.float())
    logmag = log_magnitude(x, cfg)
    y = griffin_lim(logmag, cfg)
    assert y.shape == (2, cfg.num_samples) and torch.isfinite(y).all()
    torch.testing.assert_close(y, griffin_lim(logmag, cfg))  # seeded: reproducible
    # magnitudes come back (phase is free): the MR-STFT distance is small next to a wrong signal's
    loss = MultiResolutionSTFTLoss()
    assert loss(y, x).item() < 0.5 * loss(x.flip(0), x).item()
    mag_err = (stft_magnitude(y, 2048, 256) - logmag.exp()).norm() / logmag.exp().norm()
    assert mag_err < 0.3
    with pytest.raises(ValueError):
        griffin_lim(torch.zeros(1, 100, 44), cfg)
