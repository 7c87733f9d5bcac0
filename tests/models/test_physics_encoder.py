"""Physics latent: the official prior normalisations and the five-MLP encoder at the paper's widths."""

import torch

from physdiff.models.physics_encoder import PhysicsEncoder, PriorNorm, normalize_priors


def test_normalisations_hit_their_documented_anchors():
    norm = PriorNorm()  # paper STFT: 44.1 kHz, n_fft 2048, hop 256, 44 frames, -80 dB floor, "fit" lambda
    bw = 44100 / 2048
    freq = torch.tensor([[0.0, bw + 0.5 * bw, 2 * bw - 0.5 * bw, 3 * bw]])  # centre, +half bin, -half bin, centre
    power = torch.tensor([[0.0, -80.0, -40.0, -20.0]])
    frames_to_floor = torch.tensor([[0.5, 44.0, 22.25, 1e9]])  # in STFT frames
    seconds = frames_to_floor * norm.hop_length / norm.sample_rate
    decay = (power - norm.floor_db).clamp_min(1e-3) / seconds  # "fit": reach the floor after `seconds`
    decay[0, 3] = 0.0  # never decays
    t60 = torch.tensor([[1e-5, 0.5 + 1e-5, 0.25 + 1e-5]])
    gamma = 60.0 / t60
    w = torch.tensor([[0.1, 0.5, 0.9]])
    out = normalize_priors(freq, power, decay, w, gamma, norm)
    assert torch.allclose(out["freq"], torch.tensor([[0.0, 1.0, -1.0, 0.0]]), atol=1e-5)
    assert torch.allclose(out["power"], torch.tensor([[-1.0, 1.0, 0.0, -0.5]]))
    # power -80 has no room to fall, time 0 -> clamped to 0.5 frame -> -1
    assert torch.allclose(out["decay"], torch.tensor([[-1.0, -1.0, 0.0, 1.0]]), atol=1e-4)
    assert torch.allclose(out["res_decay"], torch.tensor([[0.0, 1.0, 0.5]]), atol=1e-4)
    assert torch.equal(out["res_weight"], w)
    t60_conv = normalize_priors(freq, power, 60.0 / seconds, w, gamma, PriorNorm(decay_convention="t60"))
    assert torch.allclose(t60_conv["decay"][0, :3], torch.tensor([-1.0, 1.0, 0.0]), atol=1e-4)


def test_paper_encoder_widths_and_range():
    enc = PhysicsEncoder(1025, 100)  # official widths
    linears = [m for m in enc.freq if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(1025, 512), (512, 512), (512, 512), (512, 64)]
    linears = [m for m in enc.res_decay if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears][-1] == (512, 32)
    assert (enc.proj.in_features, enc.proj.out_features) == (256, 256)
    b = 3
    priors = {"freq": torch.rand(b, 1025) * 2 - 1, "power": torch.rand(b, 1025), "decay": torch.rand(b, 1025),
              "res_weight": torch.rand(b, 100), "res_decay": torch.rand(b, 100)}
    mu = enc(priors)
    assert mu.shape == (b, 256) and mu.abs().max() < 1
    priors2 = dict(priors, res_decay=torch.rand(b, 100))
    assert not torch.allclose(enc(priors2), mu)  # every branch reaches mu
