"""Sound editing on the physics priors, measured on the resynthesised audio: frequency scaling moves
the spectral peak, decay scaling changes the measured decay rate, muting removes a band's energy,
the residual gain scales the residual; before/after WAVs and the spectrogram figure are written."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from physdiff.eval.editing import EditSpec, apply_edit, edit_clip, resynthesize
from physdiff.physics import Modes, ResidualNoise, band_edges

SR, T = 16000, 4000  # 0.25 s


def _modes() -> Modes:
    freq = torch.tensor([[500.0, 1000.0, 3000.0]], dtype=torch.float64)  # (1, 3) Hz
    power = torch.tensor([[-20.0, 0.0, -10.0]], dtype=torch.float64)  # dB
    decay = torch.tensor([[60.0, 100.0, 200.0]], dtype=torch.float64)  # dB/s
    return Modes(freq, power, decay)


def _residual() -> tuple[ResidualNoise, torch.Tensor, torch.Tensor]:
    res = ResidualNoise(num_bands=16, sample_rate=SR, num_samples=T, fmin=20.0, spacing="mel", seed=0).double()
    gamma = torch.full((1, 16), 300.0, dtype=torch.float64)  # (1, M) dB/s
    weight = torch.full((1, 16), 0.02, dtype=torch.float64)  # (1, M)
    return res, gamma, weight


def _spectrum(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    mag = np.abs(np.fft.rfft(x.reshape(-1).numpy() * np.hanning(x.numel())))
    return np.fft.rfftfreq(x.numel(), 1.0 / SR), mag


def _band_energy(x: torch.Tensor, lo: float, hi: float) -> float:
    f, mag = _spectrum(x)
    return float((mag[(f >= lo) & (f <= hi)] ** 2).sum())


def _measured_decay(x: torch.Tensor, freq: float) -> float:
    """dB/s fall of the STFT bin nearest ``freq``: least-squares slope of its dB track."""
    n_fft, hop = 512, 64
    spec = torch.stft(x.reshape(-1), n_fft, hop, window=torch.hann_window(n_fft, dtype=x.dtype), center=False, return_complex=True)
    track = 20 * torch.log10(spec.abs()[round(freq * n_fft / SR)] + 1e-12).numpy()  # (frames,)
    t = (np.arange(track.size) * hop + n_fft / 2) / SR
    return -float(np.polyfit(t, track, 1)[0])


def test_freq_scale_moves_the_spectral_peak():
    res, gamma, weight = _residual()
    for s in (0.8, 1.3):
        m, g, w = apply_edit(_modes(), gamma, weight, EditSpec(freq_scale=s), SR)
        f, mag = _spectrum(resynthesize(m, g, w, res, SR, T))
        peak = f[np.argmax(mag)]
        assert peak == pytest.approx(1000.0 * s, abs=SR / T)  # within one FFT bin (4 Hz)
    # Pushed past Nyquist (3 x 3000 Hz > 8 kHz): muted to the floor instead of aliasing.
    m, _, _ = apply_edit(_modes(), gamma, weight, EditSpec(freq_scale=3.0), SR)
    assert m.power[0].tolist() == [-20.0, 0.0, -80.0]


def test_decay_scale_changes_the_measured_decay():
    modes = _modes()
    gamma = weight = torch.zeros(1, 1, dtype=torch.float64)
    base = _measured_decay(resynthesize(modes, gamma, weight, None, SR, T, normalize=False), 1000.0)
    assert base == pytest.approx(100.0, rel=0.05)  # the prior's lambda, measured back
    for s in (0.5, 2.0):
        m, _, _ = apply_edit(modes, gamma, weight, EditSpec(decay_scale=s), SR)
        got = _measured_decay(resynthesize(m, gamma, weight, None, SR, T, normalize=False), 1000.0)
        assert got / base == pytest.approx(s, rel=0.05)
    # The residual decay follows decay_scale unless set on its own.
    _, g1, _ = apply_edit(modes, torch.ones(1, 4), torch.ones(1, 4), EditSpec(decay_scale=0.5), SR)
    _, g2, _ = apply_edit(modes, torch.ones(1, 4), torch.ones(1, 4), EditSpec(decay_scale=0.5, residual_decay_scale=3.0), SR)
    assert g1.tolist() == [[0.5] * 4] and g2.tolist() == [[3.0] * 4]


def test_mute_removes_band_energy_and_keeps_the_rest():
    res, gamma, weight = _residual()
    edges = band_edges(16, SR, 20.0, "mel")
    before = resynthesize(_modes(), gamma, weight, res, SR, T, normalize=False)
    m, g, w = apply_edit(_modes(), gamma, weight, EditSpec(mute_hz=[2000, 4000]), SR, edges)
    after = resynthesize(m, g, w, res, SR, T, normalize=False)
    inside_before, inside_after = _band_energy(before, 2200, 3800), _band_energy(after, 2200, 3800)
    assert inside_after < 1e-3 * inside_before  # > 30 dB less energy in the muted band
    assert _band_energy(after, 0, 1200) == pytest.approx(_band_energy(before, 0, 1200), rel=0.1)
    assert (w[0] == 0).sum() > 0 and (w[0] > 0).sum() > 0  # only the overlapping residual bands
    with pytest.raises(ValueError, match="residual_band_edges"):
        apply_edit(_modes(), gamma, weight, EditSpec(mute_hz=[2000, 4000]), SR)


def test_residual_gain_scales_the_residual():
    res, gamma, weight = _residual()
    silent = Modes(*(torch.zeros(1, 1, dtype=torch.float64) for _ in range(3)))
    silent.power.fill_(-400.0)  # no modal part: the output is the residual alone
    _, g, w = apply_edit(silent, gamma, weight, EditSpec(residual_gain_db=-6.0), SR)
    a = resynthesize(silent, gamma, weight, res, SR, T, normalize=False)
    b = resynthesize(silent, g, w, res, SR, T, normalize=False)
    assert (b.square().mean() / a.square().mean()).sqrt().item() == pytest.approx(10 ** (-6 / 20), rel=1e-6)


def test_edit_clip_writes_before_after_audio_and_spectrograms(tmp_path):
    res, gamma, weight = _residual()
    spec = {"freq_scale": 1.2, "decay_scale": 0.5, "mute_hz": [2000, 4000], "residual_gain_db": -6}
    out = edit_clip(_modes(), gamma, weight, spec, res, out_dir=tmp_path, name="clip7", n_fft=512, hop_length=128)
    assert out.before.shape == out.after.shape == (1, T)
    assert out.after.abs().max().item() == pytest.approx(1.0)  # peak-normalised, as the official code
    p = out.paths[0]
    for key in ("before_wav", "after_wav"):
        audio, sr = sf.read(p[key])
        assert sr == SR and audio.shape == (T,) and np.isfinite(audio).all()
    a, _ = sf.read(p["after_wav"])
    np.testing.assert_allclose(a, out.after[0].numpy(), atol=1e-6)
    with Image.open(p["spectrogram_png"]) as im:
        assert im.size[0] > 400 and im.size[1] > 200
    assert out.modes.freq[0, 1].item() == pytest.approx(1200.0)
    with pytest.raises(ValueError, match="unknown edit keys"):
        EditSpec.from_dict({"pitch": 2})
    with pytest.raises(ValueError, match="lo < hi"):
        EditSpec(mute_hz=(4000, 2000))
    assert math.isclose(EditSpec.from_dict(spec).to_dict()["mute_hz"][0][1], 4000.0)
