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


def _widths(seq: torch.nn.Sequential) -> list[tuple[int, int]]:
    return [(m.in_features, m.out_features) for m in seq if isinstance(m, torch.nn.Linear)]


def test_paper_encoder_widths_and_range():
    enc = PhysicsEncoder(1025, 100)  # official widths (ParamsNet: F_Encoder / P_Encoder / N_Encoder)
    for name in ("freq", "power", "decay"):
        assert _widths(getattr(enc, name)) == [(1025, 512), (512, 512), (512, 512), (512, 64)]
    for name in ("res_weight", "res_decay"):
        assert _widths(getattr(enc, name)) == [(100, 64), (64, 64), (64, 32)]
    assert (enc.proj.in_features, enc.proj.out_features) == (256, 256)
    # the official ParamsNet's parameter count: Linear weights + biases, one PReLU slope per activation
    mode = (1025 * 512 + 512) + 2 * (512 * 512 + 512) + (512 * 64 + 64) + 3
    res = (100 * 64 + 64) + (64 * 64 + 64) + (64 * 32 + 32) + 2
    assert sum(p.numel() for p in enc.parameters()) == 3 * mode + 2 * res + 256 * 256 + 256
    b = 3
    priors = {"freq": torch.rand(b, 1025) * 2 - 1, "power": torch.rand(b, 1025), "decay": torch.rand(b, 1025),
              "res_weight": torch.rand(b, 100), "res_decay": torch.rand(b, 100)}
    mu = enc(priors)
    assert mu.shape == (b, 256) and mu.abs().max() < 1
    priors2 = dict(priors, res_decay=torch.rand(b, 100))
    assert not torch.allclose(enc(priors2), mu)  # every branch reaches mu


def test_config_builds_official_paper_encoder_and_keeps_tiny():
    """``paper`` resolves to the official widths; ``tiny`` / ``debug`` keep residual MLPs as wide and deep as
    their mode MLPs (their values before the paper fix, docs/deviations.md)."""
    from physdiff.config import resolve_config
    from physdiff.models.conditioning import Conditioner

    paper = Conditioner.from_config(resolve_config("paper"), nu_dim=2048).physics
    assert _widths(paper.res_weight) == [(100, 64), (64, 64), (64, 32)]
    assert _widths(paper.freq)[0] == (1025, 512)
    tiny = Conditioner.from_config(resolve_config("tiny"), nu_dim=64).physics
    assert _widths(tiny.res_decay) == [(100, 128), (128, 128), (128, 128), (128, 16)]
    assert _widths(tiny.power) == [(257, 128), (128, 128), (128, 128), (128, 32)]
    debug = Conditioner.from_config(resolve_config("debug"), nu_dim=64).physics
    assert _widths(debug.res_weight) == [(100, 64), (64, 64), (64, 64), (64, 16)]
