"""Modal estimation: the vectorised paper rule equals the per-bin reference; round trips on known
damped sinusoids; the high-resolution estimator; defined behaviour on edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from physdiff.physics import Modes, estimate_modes, list_estimators
from tests.physics.reference_estimator import reference_paper_rule_batch
from tests.physics.signals import BIN_HZ, HOP, N_FFT, SR, T, make_clips, random_modes, true_bins

FLOOR = -80.0


def at_bins(values: torch.Tensor, bins: np.ndarray) -> np.ndarray:
    return np.take_along_axis(values.double().cpu().numpy(), bins, axis=1)


def reaches_floor(power: np.ndarray, decay: np.ndarray, margin_db: float = 10.0) -> np.ndarray:
    """Modes whose level (relative to the clip's loudest mode) is below the floor well inside the clip."""
    rel = power - power.max(axis=1, keepdims=True)
    return rel - decay * (T / SR) < FLOOR - margin_db


# ----------------------------------------------------------------------------- the oracle


@pytest.mark.parametrize("snr", [None, 20.0])
def test_paper_rule_equals_per_bin_reference_float64(snr):
    freq, power, decay = random_modes(3, 6, seed=11)
    audio = make_clips(freq, power, decay, snr_db=snr, dtype=torch.float64)
    for convention in ("fit", "t60"):
        modes = estimate_modes(audio, SR, decay_convention=convention)
        rf, rp, rl = reference_paper_rule_batch(audio.numpy(), SR, decay_convention=convention)
        assert modes.freq.dtype == torch.float64
        np.testing.assert_array_equal(modes.freq.numpy(), rf)
        np.testing.assert_allclose(modes.power.numpy(), rp, atol=1e-9)
        np.testing.assert_allclose(modes.decay.numpy(), rl, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("length", [300, 2048 + 77, 3 * T])  # shorter than n_fft, odd, longer than expected
def test_paper_rule_equals_reference_any_length(length):
    rng = np.random.default_rng(length)
    t = np.arange(length) / SR
    x = np.exp(-t * 40) * np.sin(2 * math.pi * 1234.5 * t) + 0.01 * rng.standard_normal(length)
    audio = torch.from_numpy(x)[None]
    modes = estimate_modes(audio, SR)
    rf, rp, rl = reference_paper_rule_batch(audio.numpy(), SR)
    assert modes.freq.shape == (1, N_FFT // 2 + 1)
    np.testing.assert_allclose(modes.freq.numpy(), rf, rtol=1e-12)  # same FFT bin; df * j rounding only
    np.testing.assert_allclose(modes.power.numpy(), rp, atol=1e-9)
    np.testing.assert_allclose(modes.decay.numpy(), rl, rtol=1e-9)


def test_paper_rule_float32_matches_reference():
    freq, power, decay = random_modes(2, 6, seed=12)
    audio = make_clips(freq, power, decay, dtype=torch.float64)
    modes = estimate_modes(audio.float(), SR)
    assert modes.freq.dtype == torch.float32
    rf, rp, rl = reference_paper_rule_batch(audio.numpy(), SR)
    # float32 rounding may flip an argmax between two nearly equal FFT bins or a frame sitting at the floor
    assert (np.abs(modes.freq.numpy() - rf) > 1e-2).mean() < 0.005
    assert np.abs(modes.power.numpy() - rp).max() < 0.01
    assert (np.abs(modes.decay.numpy() - rl) > 1e-3 * np.abs(rl) + 1e-3).mean() < 0.005


# ----------------------------------------------------------------------------- round trips


def test_paper_rule_single_mode_frequency_within_half_fft_bin():
    """One damped mode per clip: f is the nearest whole-clip FFT bin, so within sr / T / 2 = 2 Hz."""
    freq, power, decay = random_modes(24, 1, seed=1, decay_range=(50.0, 1500.0))
    modes = estimate_modes(make_clips(freq, power, decay), SR)
    err = np.abs(at_bins(modes.freq, true_bins(freq)) - freq)
    assert err.max() <= 2.0 + 1e-3


def test_paper_rule_round_trip_multi_mode_frequency():
    """Six modes per clip, 16 bins apart, lambda 50-600 dB/s. Measured: f within 2 Hz for ~97 % of
    modes, the rest within two 4 Hz FFT bins: the official grid is itself up to 2 Hz off, and the spectral
    tails of the other damped modes skew the whole-clip FFT peak past that. (With lambda up to 1500 dB/s,
    ~16 % of modes are off by more than 2 Hz.) On a 1 Hz grid (fft_pad=4) all are within 2 Hz: below."""
    freq, power, decay = random_modes(16, 6, seed=2, decay_range=(50.0, 600.0), min_gap_bins=16)
    modes = estimate_modes(make_clips(freq, power, decay), SR)
    f_err = np.abs(at_bins(modes.freq, true_bins(freq)) - freq)
    assert (f_err <= 2.0 + 1e-3).mean() >= 0.95
    assert f_err.max() <= 4.0 * 2 + 1e-3  # never more than two FFT bins off


@pytest.mark.parametrize("length", [11025, 3000])
def test_padded_paper_rule_equals_reference(length):
    """fft_pad reads the same rule off a zero-padded whole-clip FFT; the oracle pads the same way."""
    freq, power, decay = random_modes(3, 5, seed=7, decay_range=(50.0, 1500.0))
    audio = make_clips(freq, power, decay, dtype=torch.float64)[:, :length]
    modes = estimate_modes(audio, SR, fft_pad=4)
    rf, rp, rl = reference_paper_rule_batch(audio.numpy(), SR, fft_pad=4)
    np.testing.assert_allclose(modes.freq.numpy(), rf, atol=1e-9)
    np.testing.assert_allclose(modes.power.numpy(), rp, atol=1e-9)
    np.testing.assert_allclose(modes.decay.numpy(), rl, rtol=1e-9, atol=1e-9)


def test_padded_paper_rule_multi_mode_frequency_within_2_hz():
    """The same six-mode clips on a 1 Hz grid (fft_pad=4): every mode within 2 Hz (measured max 1.4 Hz,
    median 0.25 Hz). The rule is unchanged; only the official 4 Hz grid's own 2 Hz error is gone."""
    freq, power, decay = random_modes(16, 6, seed=2, decay_range=(50.0, 600.0), min_gap_bins=16)
    modes = estimate_modes(make_clips(freq, power, decay), SR, fft_pad=4)
    f_err = np.abs(at_bins(modes.freq, true_bins(freq)) - freq)
    assert f_err.max() <= 2.0, f_err.max()
    with pytest.raises(ValueError, match="fft_pad"):
        estimate_modes(make_clips(freq[:1], power[:1], decay[:1]), SR, fft_pad=0)


def test_paper_rule_round_trip_multi_mode_decay():
    """Modes that reach the floor inside the clip (lambda 300-1500 dB/s): lambda within 35 %
    (measured max 31 %, median 20 %, always under-estimated: the first frame sees half a window and
    the 46 ms window smears the fall)."""
    freq, power, decay = random_modes(16, 6, seed=2, decay_range=(300.0, 1500.0))
    modes = estimate_modes(make_clips(freq, power, decay), SR)
    bins = true_bins(freq)
    reach = reaches_floor(power, decay)
    assert reach.sum() >= 50
    lam_err = np.abs(at_bins(modes.decay, bins) / decay - 1.0)[reach]
    assert lam_err.max() < 0.35


def test_paper_rule_power_tracks_relative_level():
    freq, power, decay = random_modes(8, 5, seed=3, decay_range=(50.0, 300.0))
    modes = estimate_modes(make_clips(freq, power, decay), SR)
    p = at_bins(modes.power, true_bins(freq))
    # the first frame sees half a window; relative levels between modes survive within a few dB
    rel_err = (p - p.max(1, keepdims=True)) - (power - power.max(1, keepdims=True))
    assert np.abs(rel_err).max() < 3.0


@pytest.mark.parametrize("decay_range", [(300.0, 1500.0), (10.0, 150.0)])  # second: never reaches the floor
def test_highres_round_trip_clean(decay_range):
    freq, power, decay = random_modes(12, 6, seed=4, decay_range=decay_range, min_gap_bins=16)
    modes = estimate_modes(make_clips(freq, power, decay), SR, method="highres")
    bins = true_bins(freq)
    assert np.abs(at_bins(modes.freq, bins) - freq).max() < 0.5
    assert np.abs(at_bins(modes.decay, bins) / decay - 1.0).max() < 0.10
    p = at_bins(modes.power, bins)
    rel_err = (p - p.max(1, keepdims=True)) - (power - power.max(1, keepdims=True))
    assert np.abs(rel_err).max() < 0.5  # window-gain-corrected level at t = 0
    if decay_range[1] < 200:  # the paper rule cannot see these decays at all (time to floor = clip length)
        paper = estimate_modes(make_clips(freq, power, decay), SR)
        assert np.median(np.abs(at_bins(paper.decay, bins) / decay - 1.0)) > 0.5


def test_highres_beats_paper_rule_on_noisy_clips():
    freq, power, decay = random_modes(12, 6, seed=5, decay_range=(100.0, 600.0), min_gap_bins=16)
    audio = make_clips(freq, power, decay, snr_db=20.0, seed=5)
    bins = true_bins(freq)
    errs = {}
    for method in ("paper", "highres"):
        modes = estimate_modes(audio, SR, method=method)
        errs[method] = (
            np.median(np.abs(at_bins(modes.freq, bins) - freq)),
            np.median(np.abs(at_bins(modes.decay, bins) / decay - 1.0)),
        )
    assert errs["highres"][0] < errs["paper"][0] / 5
    assert errs["highres"][1] < errs["paper"][1] / 5


def test_highres_frequency_stays_in_bin_window():
    freq, power, decay = random_modes(4, 6, seed=6)
    modes = estimate_modes(make_clips(freq, power, decay), SR, method="highres")
    centers = torch.arange(N_FFT // 2 + 1) * BIN_HZ
    assert ((modes.freq - centers).abs() <= BIN_HZ / 2 + 1e-3).all()
    assert (modes.decay >= 0).all() and torch.isfinite(modes.stack()).all()


# ----------------------------------------------------------------------------- defined behaviour


@pytest.mark.parametrize("method", ["paper", "highres"])
def test_silent_clip_gives_defined_modes(method):
    modes = estimate_modes(torch.zeros(2, T), SR, method=method)
    centers = torch.arange(N_FFT // 2 + 1, dtype=torch.float32) * BIN_HZ
    torch.testing.assert_close(modes.freq, centers.expand(2, -1))
    assert (modes.power == FLOOR).all()
    assert (modes.decay == 0).all()
    t60 = estimate_modes(torch.zeros(T), SR, decay_convention="t60")
    torch.testing.assert_close(t60.decay, torch.full_like(t60.decay, 60.0 / (0.5 * HOP / SR)))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("method", ["paper", "highres"])
def test_non_finite_input_is_a_clear_error(bad, method):
    audio = torch.randn(3, T)
    audio[1, 100] = bad
    with pytest.raises(ValueError, match=r"NaN or inf.*batch index 1"):
        estimate_modes(audio, SR, method=method)


@pytest.mark.parametrize("length", [1, 300, 2048 + 77, 3 * T])  # one sample, shorter than n_fft, odd, longer
def test_highres_any_length_is_defined(length):
    """highres on clips of any length: (B, 1025) finite modes, f inside its bin's window, decay >= 0; on a
    long enough clip it still finds a clean mode."""
    t = np.arange(length) / SR
    x = np.exp(-t * 40) * np.sin(2 * math.pi * 1234.5 * t)
    modes = estimate_modes(torch.from_numpy(x)[None].float(), SR, method="highres")
    assert modes.freq.shape == (1, N_FFT // 2 + 1)
    assert torch.isfinite(modes.stack()).all() and (modes.decay >= 0).all()
    centers = torch.arange(N_FFT // 2 + 1) * BIN_HZ
    assert ((modes.freq[0] - centers).abs() <= BIN_HZ / 2 + 1e-3).all()
    if length >= N_FFT + HOP:  # at least two frames of a full window
        assert modes.freq[0, round(1234.5 / BIN_HZ)].item() == pytest.approx(1234.5, abs=0.5)


def test_never_reaching_floor_uses_clip_length():
    t = torch.arange(T, dtype=torch.float64) / SR
    audio = torch.sin(2 * math.pi * 1000.0 * t)  # undamped: no bin near 1 kHz reaches the floor
    modes = estimate_modes(audio, SR)
    k = round(1000.0 / BIN_HZ)
    n_frames = T // HOP + 1
    expected = (modes.power[0, k] - FLOOR) / (n_frames * HOP / SR)
    torch.testing.assert_close(modes.decay[0, k], expected)
    t60 = estimate_modes(audio, SR, decay_convention="t60")
    assert t60.decay[0, k].item() == pytest.approx(60.0 / (n_frames * HOP / SR))


def test_shapes_scale_invariance_and_options():
    freq, power, decay = random_modes(2, 4, seed=7)
    audio = make_clips(freq, power, decay)
    one = estimate_modes(audio[0], SR)
    assert isinstance(one, Modes) and one.freq.shape == (1, 1025)
    quiet = estimate_modes(audio * 1e-3, SR)
    full = estimate_modes(audio, SR)
    torch.testing.assert_close(quiet.power, full.power, atol=1e-3, rtol=0)
    # identical up to float32 rounding (which may flip an argmax between near-equal FFT bins at DC / Nyquist)
    assert (quiet.freq - full.freq).abs().gt(1e-3).float().mean() < 0.005
    small = estimate_modes(audio, 16000, n_fft=512, hop_length=128)
    assert small.freq.shape == (2, 257)
    assert set(list_estimators()) >= {"paper", "highres"}
    with pytest.raises(ValueError, match="unknown modal estimator"):
        estimate_modes(audio, SR, method="nope")
    with pytest.raises(ValueError, match="decay_convention"):
        estimate_modes(audio, SR, decay_convention="nope")
    with pytest.raises(ValueError, match="highres"):
        estimate_modes(audio, SR, method="highres", decay_convention="t60")
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        estimate_modes(audio[None], SR)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("method", ["paper", "highres"])
def test_cuda_matches_cpu(method):
    freq, power, decay = random_modes(4, 6, seed=8)
    audio = make_clips(freq, power, decay)
    cpu = estimate_modes(audio, SR, method=method)
    gpu = estimate_modes(audio.cuda(), SR, method=method)
    assert gpu.freq.is_cuda
    gpu = gpu.to("cpu")
    assert (gpu.freq - cpu.freq).abs().gt(1e-2).float().mean() < 0.005
    assert (gpu.power - cpu.power).abs().median() < 1e-3
