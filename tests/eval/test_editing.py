"""Sound editing on the physics priors, measured on the resynthesised audio: frequency scaling moves
the spectral peak, decay scaling changes the measured decay rate, muting removes a band's energy,
the residual gain scales the residual; before/after WAVs and the spectrogram figure are written."""

from __future__ import annotations

import json
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


# ----------------------------------------------------------------------------- the measured effects (edit_study)


def test_wilson_interval_matches_the_closed_form():
    from physdiff.eval.edit_study import wilson_interval

    lo, hi = wilson_interval(5, 10)  # p = 0.5, n = 10: 0.5 -+ 1.96 sqrt(0.025 + 0.0096) / 1.384
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    lo, hi = wilson_interval(0, 20)
    assert lo == 0.0 and hi == pytest.approx(0.1611, abs=1e-4)  # never below 0, and not 0 wide at k = 0
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_nearest_of_material_searches_only_that_materials_clips():
    from physdiff.eval.edit_study import follow_rate, nearest_of_material

    keys = torch.tensor([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0], [4.0, 4.0]])  # (4, 2) training nu
    values = torch.arange(4.0)[:, None].repeat(1, 3)  # (4, 3): row i holds i
    materials = torch.tensor([0, 1, 1, 0])
    query = torch.tensor([[0.1, 0.0], [4.9, 5.0]])  # nearest overall: rows 0 and 2
    v, rows = nearest_of_material(keys, values, materials, query, material=1)
    assert rows.tolist() == [1, 2] and v[:, 0].tolist() == [1.0, 2.0]  # nearest among material 1 only
    _v, rows = nearest_of_material(keys, values, materials, query, material=0)
    assert rows.tolist() == [0, 3]
    with pytest.raises(ValueError, match="no training clip of material 7"):
        nearest_of_material(keys, values, materials, query, material=7)
    r = follow_rate(torch.tensor([3, 3, 1, 3, 0]), torch.tensor([3, 0, 1, 2, 0]), target=3)
    assert (r["clips"], r["followed"], r["rate"]) == (4, 2, 0.5)  # the clip already of material 3 is not counted


def test_removing_low_modes_drops_the_energy_below_the_cutoff_and_keeps_the_rest():
    from physdiff.eval.edit_study import audio_band_energies, level_change, spectrogram_band_energies
    from physdiff.physics.spectral import spectrogram_target
    from physdiff.config import resolve_config

    freq = torch.tensor([[200.0, 350.0, 1500.0, 3000.0]], dtype=torch.float64)  # two modes below 500 Hz, two above
    modes = Modes(freq, torch.tensor([[0.0, -6.0, -3.0, -10.0]], dtype=torch.float64),
                  torch.tensor([[40.0, 60.0, 80.0, 120.0]], dtype=torch.float64))
    none = torch.zeros(1, 0, dtype=torch.float64)
    m, _g, _w = apply_edit(modes, none, none, EditSpec(mute_hz=[0, 500]), SR)
    assert m.power[0].tolist() == [-80.0, -80.0, -3.0, -10.0]
    before = resynthesize(modes, none, none, None, SR, T, normalize=False)  # (1, T)
    after = resynthesize(m, none, none, None, SR, T, normalize=False)
    lo0, hi0 = audio_band_energies(before, SR, 512, 128, 500.0)
    lo1, hi1 = audio_band_energies(after, SR, 512, 128, 500.0)
    below, above = level_change(lo0, lo1), level_change(hi0, hi1)
    # What stays below the cutoff is the kept modes' own spread (their onset at t = 0 is broadband): the energy
    # below 500 Hz of a resynthesis of the two kept modes alone, by linearity (muted modes sit at -80 dB)
    kept = Modes(freq[:, 2:], modes.power[:, 2:], modes.decay[:, 2:])
    lo_kept, hi_kept = audio_band_energies(resynthesize(kept, none, none, None, SR, T, normalize=False), SR, 512, 128, 500.0)
    assert float(lo1 / lo_kept) == pytest.approx(1.0, rel=0.02) and below["mean_db"] < -30
    assert abs(above["mean_db"]) < 0.05 and float(hi1 / hi_kept) == pytest.approx(1.0, rel=1e-3)  # untouched above
    # The same measure on normalised log-magnitude spectrograms (what the diffusion model samples) agrees with it
    a = resolve_config("tiny").audio  # 16 kHz, n_fft 512, hop 128: this test's grid
    x = spectrogram_target(torch.cat([before, after]).float(), a)  # (2, 1, F, N) of peak-normalised clips
    slo, shi = spectrogram_band_energies(x, a, 500.0)
    share = lambda lo, hi: (lo / (lo + hi)).tolist()  # noqa: E731 (peak normalisation rescales both bands alike)
    assert share(slo, shi) == pytest.approx(share(torch.cat([lo0, lo1]), torch.cat([hi0, hi1])), abs=1e-3)
    ch = level_change(torch.tensor([1.0, 1.0, 1.0]), torch.tensor([0.1, 0.01, 1.0]), reps=200)
    assert ch["mean_db"] == pytest.approx(-10.0) and ch["median_db"] == pytest.approx(-10.0)
    assert ch["ci_db"][0] <= ch["mean_db"] <= ch["ci_db"][1] and ch["min_db"] == pytest.approx(-20.0)


# ----------------------------------------------------------------------------- the commands, on trained debug runs


@pytest.fixture(scope="module")
def trained(debug_data: dict) -> dict:
    from tests.stages.trained_runs import train_upstream

    return train_upstream(debug_data, ("ours",), classifier=True)


def _edit(debug_data: dict, *args: str) -> int:
    from physdiff.cli import edit
    from tests.stages.trained_runs import overrides

    return edit.main([*args, "--preset", "debug", *overrides(debug_data)])


def _train_materials(debug_data: dict) -> dict[str, int]:
    from physdiff.cli.edit_study import split_labels
    from tests.stages.trained_runs import config

    return split_labels(config(debug_data), "train")


def test_fix_material_takes_the_priors_of_the_nearest_clip_of_that_material(debug_data: dict, trained: dict,
                                                                            tmp_path) -> None:
    from physdiff.artifacts import read_export
    from physdiff.cli.edit import find_clip
    from physdiff.data.labels import GREATEST_HITS_MATERIALS
    from physdiff.data.sidetable import read_side_table
    from tests.stages.trained_runs import config

    cfg = config(debug_data)
    labels = _train_materials(debug_data)
    key = sorted(labels)[0]
    target = next(m for m in sorted(set(labels.values())) if m != labels[key])
    name = GREATEST_HITS_MATERIALS[target]
    assert _edit(debug_data, "--clip", key, "--fix-material", name, "--steps", "2", "--out", str(tmp_path)) == 0
    rec = json.loads((tmp_path / "edit.json").read_text())
    fixed = rec["fix_material"]["clip"]
    assert rec["fix_material"]["material"] == name and labels[fixed] == target
    # the nearest by nu among that material's training clips (brute force over the video export)
    vt = read_side_table(read_export(trained["video"], "video").table("train"))
    nu = torch.from_numpy(vt.arrays["nu"]).float()
    row = vt.keys.index(key)
    cands = [i for i, k in enumerate(vt.keys) if labels[k] == target]
    best = min(cands, key=lambda i: float((nu[i] - nu[row]).norm()))
    assert fixed == vt.keys[best]
    # the edited direct sound is the resynthesis of that clip's own priors
    other, _ = find_clip(cfg, fixed)
    m = torch.as_tensor(other["modes"]).float()
    a, ph = cfg.audio, cfg.physics
    w, g = torch.as_tensor(other["prior/weight"]).float(), torch.as_tensor(other["prior/gamma"]).float()
    res = ResidualNoise(w.shape[1], a.sample_rate, a.num_samples, ph.residual_fmin, ph.residual_spacing, ph.residual_seed)
    want = resynthesize(Modes(m[:, 0], m[:, 1], m[:, 2]), g, w, res, a.sample_rate, a.num_samples,
                        normalize_modal=cfg.prior.normalize_modal)[0]
    got, sr = sf.read(tmp_path / "direct_after.wav")
    assert sr == a.sample_rate and np.allclose(got, want.numpy(), atol=1e-5)
    assert rec["outputs"]["mu_shift"] > 0 and (tmp_path / "diffusion_after.wav").stat().st_size > 0
    with pytest.raises(Exception, match="not a material"):
        _edit(debug_data, "--clip", key, "--fix-material", "unobtainium", "--out", str(tmp_path / "x"))


def test_remove_below_hz_mutes_the_low_modes(debug_data: dict, trained: dict, tmp_path) -> None:
    from physdiff.cli.edit import find_clip
    from physdiff.eval.edit_study import audio_band_energies
    from tests.stages.trained_runs import config

    cfg = config(debug_data)
    key = sorted(_train_materials(debug_data))[0]
    assert _edit(debug_data, "--clip", key, "--remove-below-hz", "1000", "--no-diffusion", "--out", str(tmp_path)) == 0
    rec = json.loads((tmp_path / "edit.json").read_text())
    assert rec["edit"]["mute_hz"] == [[0.0, 1000.0]]
    a, ph = cfg.audio, cfg.physics
    x = [torch.from_numpy(sf.read(tmp_path / f"direct_{n}.wav")[0])[None] for n in ("before", "after")]
    (lo0, hi0), (lo1, hi1) = (audio_band_energies(v, a.sample_rate, a.n_fft, a.hop_length, 1000.0) for v in x)
    assert float(lo1 / (lo1 + hi1)) < float(lo0 / (lo0 + hi0))  # both peak-normalised: the low share falls
    # Oracle: the clip resynthesised *without* its modes <= 1 kHz and residual bands reaching below 1 kHz; what is
    # left below the cutoff is the kept modes' and bands' own spread, and the muted ones add nothing to it
    clip, _ = find_clip(cfg, key)
    m = torch.as_tensor(clip["modes"]).double()
    w, g = torch.as_tensor(clip["prior/weight"]).double(), torch.as_tensor(clip["prior/gamma"]).double()
    edges = band_edges(w.shape[1], a.sample_rate, ph.residual_fmin, ph.residual_spacing)
    kept = Modes(m[:, 0], torch.where(m[:, 0] <= 1000.0, torch.full_like(m[:, 1], -400.0), m[:, 1]), m[:, 2])
    w_kept = torch.where((edges[:-1] < 1000.0)[None], torch.zeros_like(w), w)
    res = ResidualNoise(w.shape[1], a.sample_rate, a.num_samples, ph.residual_fmin, ph.residual_spacing,
                        ph.residual_seed).double()
    want = resynthesize(kept, g, w_kept, res, a.sample_rate, a.num_samples, normalize_modal=cfg.prior.normalize_modal)
    lo_w, hi_w = audio_band_energies(want, a.sample_rate, a.n_fft, a.hop_length, 1000.0)
    assert float(lo1) == pytest.approx(float(lo_w), rel=0.02) and float(hi1) == pytest.approx(float(hi_w), rel=0.02)


@pytest.mark.timeout(600)
def test_edit_study_measures_both_edits_over_the_test_clips(debug_data: dict, trained: dict, tmp_path) -> None:
    from physdiff.data.labels import GREATEST_HITS_MATERIALS

    assert _edit(debug_data, "--study", "--fix-material", "all", "--remove-below-hz", "1000", "--steps", "2",
                 "--out", str(tmp_path)) == 0
    study = json.loads((tmp_path / "study.json").read_text())
    labels = _train_materials(debug_data)
    fm = study["fix_material"]
    # one row per material with training clips (the others have no priors to take), in the label order
    assert [r["material"] for r in fm["rows"]] == [GREATEST_HITS_MATERIALS[m] for m in sorted(set(labels.values()))]
    for r in fm["rows"]:
        assert r["training_clips"] == sum(1 for v in labels.values() if GREATEST_HITS_MATERIALS[v] == r["material"])
        for when in ("after", "before"):
            x = r[when]
            assert x["rate"] == x["followed"] / x["clips"] and x["ci"][0] <= x["rate"] <= x["ci"][1]
    assert fm["pooled"]["after"]["clips"] == sum(r["after"]["clips"] for r in fm["rows"])
    rl = study["remove_low"]
    assert rl["cutoff_hz"] == 1000.0 and rl["clips"] == study["clips"] and rl["muted_modes_per_clip"] > 0
    d = rl["direct"]
    # The low band loses its modes; what stays there is the kept (heavily damped, so broad) modes' spread, which
    # on the debug world holds most of it (test_remove_below_hz_mutes_the_low_modes checks that against an oracle)
    assert d["below"]["ci_db"][1] < 0
    assert abs(d["above"]["mean_db"]) < 0.5  # above: kept, apart from residual bands that straddle the cutoff
    assert all(k in rl["diffusion"] for k in ("below", "above", "share_below_before", "share_below_after"))
    md = (tmp_path / "study.md").read_text()
    assert "Fix the physics priors to another material" in md and "Remove low-frequency modes (below 1000 Hz)" in md
