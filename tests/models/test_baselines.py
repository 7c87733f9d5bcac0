"""The comparison systems of Tables 1 and 3 and Fig. 5b: shapes at debug and paper sizes, gradients, real
overfitting on a small fixed batch, the MFCC sibling of the video_spec conditioner, and Owens retrieval."""

from __future__ import annotations

import math

import pytest
import torch

from physdiff.config import AudioConfig, resolve_config
from physdiff.configlib import ConfigError, apply_overrides, preset_config
from physdiff.models.baselines_config import (
    BASELINE_SECTIONS,
    ConvNetConfig,
    MFCCConfig,
    MuRegressorConfig,
    OwensConfig,
    TTSConfig,
)
from physdiff.models.convnet_regressor import ConvNetRegressor
from physdiff.models.frame_features import frame_sequence, upsample_time
from physdiff.models.mfcc_conditioning import MFCCConditioner, build_conditioner
from physdiff.models.mfcc_encoder import MFCCEncoder
from physdiff.models.mu_regressor import MuRegressor
from physdiff.models.owens import OwensSoundNet, nearest_clips, spacetime_images
from physdiff.models.tts_transformer import TTSTransformer
from physdiff.physics import spectrogram_target

PAPER_NU = 2048  # ResNet-50's pooled feature width
# A small clip for the training checks: 8 kHz, 128-point FFT, hop 64, 0.125 s -> 65 x 16, 1000 samples.
SMALL_AUDIO = AudioConfig(sample_rate=8000, clip_seconds=0.125, n_fft=128, hop_length=64)


def section(cls, preset: str = "debug", **over):
    s = preset_config(preset, cls)
    for k, v in over.items():
        setattr(s, k, v)
    s.validate()
    return s


def impact_batch(audio_cfg: AudioConfig, n: int = 4, seed: int = 0) -> torch.Tensor:
    """n damped sinusoids with distinct frequencies and decays: (n, T)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(audio_cfg.num_samples, dtype=torch.float64) / audio_cfg.sample_rate
    nyq = audio_cfg.sample_rate / 2
    freqs = torch.linspace(0.08, 0.7, n, dtype=torch.float64) * nyq
    decays = 10 + 60 * torch.rand(n, generator=g, dtype=torch.float64)
    return (torch.exp(-decays[:, None] * t) * torch.sin(2 * math.pi * freqs[:, None] * t)).float()


def fit(model, loss_fn, steps: int, lr: float) -> tuple[float, float]:
    """Adam on one fixed batch: (first loss, final loss in eval mode)."""
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    first = None
    for _ in range(steps):
        loss = loss_fn()
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
    model.eval()
    with torch.no_grad():
        return first, loss_fn().item()


def assert_all_grads(model: torch.nn.Module, skip: tuple[str, ...] = ()) -> None:
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None and not n.startswith(skip)]
    assert not missing, f"parameters outside the graph: {missing[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert sum(float(p.grad.abs().sum()) for p in model.parameters() if p.grad is not None) > 0


# ----------------------------------------------------------------------------- config


def test_every_section_resolves_for_every_preset_and_debug_is_smaller():
    for name, cls in BASELINE_SECTIONS.items():
        for preset in ("paper", "tiny", "debug"):
            preset_config(preset, cls).validate()
    assert preset_config("debug", ConvNetConfig).width < preset_config("tiny", ConvNetConfig).width < ConvNetConfig().width
    assert preset_config("tiny", OwensConfig).backbone == "resnet_small" and OwensConfig().backbone == "resnet50"
    assert abs(OwensConfig().rate - 89.91) < 0.01  # Owens' "90 Hz": 3 samples per 29.97 fps frame


@pytest.mark.parametrize("cls, override, match", [
    (ConvNetConfig, {"upsample": "cubic"}, "convnet.upsample"),
    (ConvNetConfig, {"attn_levels": (5,)}, "convnet.attn_levels"),
    (TTSConfig, {"decoder": "beam"}, "tts.decoder"),
    (TTSConfig, {"d_model": 30}, "tts.d_model"),
    (MFCCConfig, {"n_mfcc": 200}, "mfcc.n_mfcc"),
    (OwensConfig, {"input": "flow"}, "owens.input"),
    (OwensConfig, {"compression": 0.0}, "owens.compression"),
    (MuRegressorConfig, {"loss": "huber"}, "mu_regressor.loss"),
])
def test_bad_values_are_one_config_error_naming_the_key(cls, override, match):
    with pytest.raises(ConfigError, match=match):
        apply_overrides(cls(), override)


# ----------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("decoder", ["parallel", "autoregressive"])
def test_regressors_map_frame_features_to_the_spectrogram_at_debug_size(decoder):
    torch.manual_seed(0)
    a = resolve_config("debug").audio
    shape = (3, 1, a.num_bins, a.num_frames)  # 257 x 32
    nu_frames = torch.randn(3, 22, 64)
    for model in (ConvNetRegressor.from_config(section(ConvNetConfig), a, nu_dim=64),
                  TTSTransformer.from_config(section(TTSConfig, decoder=decoder), a, nu_dim=64)):
        model.eval()
        x = model.predict({"nu_frames": nu_frames})
        assert x.shape == shape and x.abs().max() <= 1.0
        # nu alone stands for every frame: identical to per-frame features that are constant in time
        nu = nu_frames[:, 0]
        const = nu[:, None].expand(-1, 22, -1).contiguous()
        assert torch.allclose(model.predict({"nu": nu}), model.predict({"nu_frames": const}), atol=1e-5)
        # and the frames matter: another time course gives another spectrogram
        assert (model.predict({"nu_frames": nu_frames}) - model.predict({"nu_frames": const})).abs().max() > 1e-4


def test_regressors_at_paper_size():
    torch.manual_seed(0)
    a = resolve_config("paper").audio
    nu_frames = torch.randn(1, 22, PAPER_NU)
    conv = ConvNetRegressor.from_config(ConvNetConfig(), a, nu_dim=PAPER_NU).eval()
    assert 30e6 < sum(p.numel() for p in conv.parameters()) < 50e6  # the denoiser's U-Net + input maps
    assert conv.predict({"nu_frames": nu_frames}).shape == (1, 1, 1025, 44)
    for decoder in ("parallel", "autoregressive"):
        tts = TTSTransformer.from_config(section(TTSConfig, "paper", decoder=decoder), a, nu_dim=PAPER_NU).eval()
        assert tts.predict({"nu_frames": nu_frames}).shape == (1, 1, 1025, 44)


def test_frame_upsampling_keeps_the_ends_and_interpolates_between():
    seq = torch.arange(22.0).view(1, 22, 1).expand(2, -1, 3)  # (2, 22, 3): feature = frame index
    up = upsample_time(seq, 44)
    assert up.shape == (2, 44, 3)
    assert torch.allclose(up[:, 0], seq[:, 0]) and torch.allclose(up[:, -1], seq[:, -1])
    assert torch.allclose(up[0, :, 0], torch.linspace(0, 21, 44), atol=1e-5)
    with pytest.raises(KeyError, match="nu_frames"):
        frame_sequence(None, None)


def test_owens_shapes_at_debug_and_paper_sizes():
    torch.manual_seed(0)
    for preset, px in (("debug", 32), ("paper", 64)):  # paper: ResNet-50 (2048-d); 64 px keeps the CPU test short
        a = resolve_config(preset).audio
        net = OwensSoundNet.from_config(section(OwensConfig, preset), a, num_frames=22).eval()
        frames = torch.randint(0, 256, (2, 22, 3, px, px), dtype=torch.uint8)
        pred = net.predict({"frames": frames})
        target = net.sound_features(torch.randn(2, a.num_samples))
        assert pred.shape == target.shape == (2, 42, 23)  # 0.25 s at 89.91 Hz, either sample rate
        assert net.out_steps == 8 and net.onset_index == 11  # outputs of frames 11..18 (the sound's 0.25 s)
    assert net.lstm.input_size == 2 * PAPER_NU  # spacetime features + the first frame's colour features
    feat = OwensSoundNet.from_config(section(OwensConfig, "debug", input="features"), a, num_frames=22, feature_dim=64)
    assert feat.cnn is None and feat.predict({"nu_frames": torch.randn(2, 22, 64)}).shape == (2, 42, 23)


def test_spacetime_image_stacks_previous_current_next_grayscale():
    frames = torch.rand(1, 5, 3, 4, 4)
    st = spacetime_images(frames)
    gray = (frames * torch.tensor([0.299, 0.587, 0.114]).view(1, 1, 3, 1, 1)).sum(2)  # (1, 5, 4, 4)
    assert torch.allclose(st[:, 2, 0], gray[:, 1]) and torch.allclose(st[:, 2, 1], gray[:, 2])
    assert torch.allclose(st[:, 2, 2], gray[:, 3])
    assert torch.allclose(st[:, 0, 0], gray[:, 0]) and torch.allclose(st[:, 4, 2], gray[:, 4])  # ends repeat


def test_mfcc_encoder_and_regressor_at_paper_size():
    torch.manual_seed(0)
    cfg = resolve_config("paper")
    enc = MFCCEncoder.from_config(MFCCConfig(), cfg.audio).eval()
    audio = torch.randn(2, cfg.audio.num_samples)
    feats = enc.features(audio)
    assert feats.shape == (2, 40, 44)  # the spectrogram's 44 frames
    assert enc(audio).shape == (2, 256)
    assert torch.allclose(enc.features(7 * audio), feats, atol=1e-3)  # peak-normalised first
    reg = MuRegressor.from_config(MuRegressorConfig(), nu_dim=PAPER_NU, mu_dim=cfg.diffusion.latent_dim).eval()
    mu = reg.predict(torch.randn(5, PAPER_NU))
    assert mu.shape == (5, 256) and mu.abs().max() < 1


# ----------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("system", ["convnet", "tts_parallel", "tts_autoregressive", "owens", "mfcc", "regressor"])
def test_gradients_reach_every_parameter(system):
    torch.manual_seed(0)
    cfg = resolve_config("debug")
    a = cfg.audio
    audio = impact_batch(a, 2)
    x0 = spectrogram_target(audio, a)  # (2, 1, 257, 32)
    nu_frames = torch.randn(2, 22, 32)
    skip: tuple[str, ...] = ()
    if system == "convnet":
        model = ConvNetRegressor.from_config(section(ConvNetConfig), a, nu_dim=32).train()
        loss = model.loss(x0, {"nu_frames": nu_frames})
    elif system.startswith("tts"):
        model = TTSTransformer.from_config(section(TTSConfig, decoder=system[4:]), a, nu_dim=32).train()
        loss = model.loss(x0, {"nu_frames": nu_frames})
    elif system == "owens":
        model = OwensSoundNet.from_config(section(OwensConfig), a, num_frames=22).train()
        frames = torch.randint(0, 256, (2, 22, 3, 32, 32), dtype=torch.uint8)
        loss = model.loss(model.sound_features(audio), {"frames": frames})
    elif system == "mfcc":
        model = MFCCConditioner.from_config(cfg, 32, section(MFCCConfig)).train()
        c = model({"nu": nu_frames[:, 0], "audio": audio}, drop_prob=0.5, generator=torch.Generator().manual_seed(1))
        loss = (c * torch.randn_like(c)).sum()  # any downstream use of c
    else:
        model = MuRegressor.from_config(section(MuRegressorConfig), nu_dim=32, mu_dim=64).train()
        loss = model.loss(torch.rand(2, 64) * 2 - 1, nu_frames[:, 0])
    assert torch.isfinite(loss)
    loss.backward()
    assert_all_grads(model, skip)


# ----------------------------------------------------------------------------- overfitting a fixed batch


def test_convnet_overfits_a_fixed_batch_beyond_any_input_free_prediction():
    torch.manual_seed(0)
    x0 = spectrogram_target(impact_batch(SMALL_AUDIO, 4), SMALL_AUDIO)  # (4, 1, 65, 16)
    nu_frames = torch.randn(4, 22, 16)
    model = ConvNetRegressor.from_config(section(ConvNetConfig, freq_input=True), SMALL_AUDIO, nu_dim=16)
    first, final = fit(model, lambda: model.loss(x0, {"nu_frames": nu_frames}), steps=40, lr=3e-3)
    # the best prediction that ignores the input (per-cell median of the batch) bounds an input-blind model
    blind = (x0 - x0.median(0, keepdim=True).values).abs().mean().item()
    assert final < 0.5 * first and final < 0.8 * blind, (first, final, blind)


@pytest.mark.parametrize("decoder", ["parallel", "autoregressive"])
def test_tts_overfits_a_fixed_batch(decoder):
    torch.manual_seed(0)
    x0 = spectrogram_target(impact_batch(SMALL_AUDIO, 4), SMALL_AUDIO)  # (4, 1, 65, 16)
    nu_frames = torch.randn(4, 22, 16)
    model = TTSTransformer.from_config(section(TTSConfig, decoder=decoder, dropout=0.0, prenet_dropout=0.0),
                                       SMALL_AUDIO, nu_dim=16)
    first, final = fit(model, lambda: model.loss(x0, {"nu_frames": nu_frames}), steps=60, lr=3e-3)
    blind = (x0 - x0.median(0, keepdim=True).values).abs().mean().item()
    generated = (model.predict({"nu_frames": nu_frames}) - x0).abs().mean().item()  # free-running for AR
    assert final < 0.5 * first and generated < blind, (first, final, generated, blind)


def test_autoregressive_generation_is_consistent_with_teacher_forcing():
    """Frame by frame generation under the causal mask equals one teacher-forced pass over its own output."""
    torch.manual_seed(0)
    model = TTSTransformer.from_config(section(TTSConfig, decoder="autoregressive"), SMALL_AUDIO, nu_dim=16).eval()
    inp = {"nu_frames": torch.randn(2, 22, 16)}
    gen = model.predict(inp)  # (2, 1, 65, 16)
    with torch.no_grad():
        forced = model(inp, gen).clamp(-1, 1)
    assert torch.allclose(forced, gen, atol=1e-5)


def test_owens_overfits_and_then_retrieves_each_training_clip_from_its_frames():
    torch.manual_seed(0)
    audio = impact_batch(SMALL_AUDIO, 4)
    g = torch.Generator().manual_seed(3)
    frames = torch.randint(0, 256, (4, 22, 3, 16, 16), generator=g, dtype=torch.uint8)
    model = OwensSoundNet.from_config(section(OwensConfig), SMALL_AUDIO, num_frames=22)
    target = model.sound_features(audio)  # (4, 42, 12)
    first, final = fit(model, lambda: model.loss(target, {"frames": frames}), steps=40, lr=3e-3)
    assert final < first - 2.0, (first, final)  # robust loss: log(eps + r^2), so -2 is a 7x smaller error
    keys = [f"clip-{i}" for i in range(4)]
    got, dist, _ = nearest_clips(model.predict({"frames": frames}), target, keys)
    assert got == keys  # each clip's predicted cochleagram is nearest its own recording's


def test_owens_retrieval_returns_the_exact_training_clip():
    torch.manual_seed(0)
    a = resolve_config("debug").audio
    net = OwensSoundNet.from_config(section(OwensConfig), a, num_frames=22)
    bank = net.sound_features(impact_batch(a, 6, seed=5))  # (6, 42, 23): the "training clips"
    keys = [f"video{i}_hit{i}" for i in range(6)]
    got, dist, idx = nearest_clips(bank[[4, 1, 4]], bank, keys, k=2)
    assert got == [keys[4], keys[1], keys[4]] and idx[:, 0].tolist() == [4, 1, 4]
    assert torch.equal(dist[:, 0], torch.zeros(3))
    assert (dist[:, 1] > 0).all()  # the runner-up is another clip
    noisy = bank[2:3] + 0.01 * torch.randn(1, *bank.shape[1:])
    assert nearest_clips(noisy, bank, keys)[0] == [keys[2]]


def test_mu_regressor_overfits_beyond_the_mean():
    torch.manual_seed(0)
    nu = torch.randn(8, 32)
    mu = torch.tanh(torch.randn(8, 64))
    model = MuRegressor.from_config(section(MuRegressorConfig, dropout=0.0), nu_dim=32, mu_dim=64)
    first, final = fit(model, lambda: model.loss(mu, nu), steps=60, lr=3e-3)
    mean_pred = (mu - mu.mean(0)).square().mean().item()  # the best nu-blind prediction
    assert final < 0.1 * mean_pred < first, (first, final, mean_pred)


# ----------------------------------------------------------------------------- Video + MFCC conditioning


def _mfcc_setup():
    cfg = resolve_config("debug")
    cond = MFCCConditioner.from_config(cfg, 32, section(MFCCConfig))
    audio = impact_batch(cfg.audio, 3)
    nu = torch.randn(3, 32)
    return cfg, cond, {"nu": nu, "audio": audio}


def test_mfcc_condition_is_nu_then_the_mfcc_latent_and_retrieval_reassembles_it():
    torch.manual_seed(0)
    cfg, cond, inp = _mfcc_setup()
    cond.eval()
    c = cond(inp)
    m = cond.latent(inp)
    assert c.shape == (3, cfg.diffusion.visual_dim + 32) == (3, cond.cond_dim)
    assert torch.allclose(c[:, -32:], m) and torch.allclose(c[:, :-32], cond.visual(inp["nu"]))
    assert torch.allclose(cond.assemble(inp["nu"], m), c)  # what the test-time path builds from a retrieved m
    pre = {"nu": inp["nu"], "mfcc": cond.mfcc.features(inp["audio"])}
    assert torch.allclose(cond.latent(pre), m, atol=1e-6)  # precomputed MFCCs give the same latent
    assert (m[0] - m[1]).abs().max() > 1e-3  # different recordings, different latents
    with pytest.raises(KeyError, match="audio"):
        cond({"nu": inp["nu"]})
    assert type(build_conditioner(cfg, 32)).__name__ == "Conditioner"  # other variants: unchanged


def test_mfcc_conditioner_drives_the_denoiser_and_its_loss_falls():
    """The sibling plugs into PhysicsDiffusion as is: fixed (t, noise) denoising loss falls, sampling works."""
    from physdiff.diffusion.losses import noise_prediction_loss
    from physdiff.diffusion.schedule import schedule_from_config
    from physdiff.models.denoiser import PhysicsDiffusion
    from physdiff.models.unet import unet_from_config

    torch.manual_seed(0)
    cfg, cond, inp = _mfcc_setup()
    d = cfg.diffusion
    model = PhysicsDiffusion(cond, unet_from_config(d, cond.cond_dim, cfg.audio.num_bins), schedule_from_config(d),
                             cond_dropout=0.0, spec_shape=(cfg.audio.num_bins, cfg.audio.num_frames))
    x0 = spectrogram_target(inp["audio"], cfg.audio)  # (3, 1, 257, 32)
    g = torch.Generator().manual_seed(0)
    t = torch.randint(0, d.timesteps, (3,), generator=g)
    noise = torch.randn(x0.shape, generator=g)

    def loss():
        c = model.conditioner(inp)
        return noise_prediction_loss(model.predict, x0, c, model.schedule, t=t, noise=noise)

    first, final = fit(model, loss, steps=15, lr=3e-3)
    assert final < 0.8 * first, (first, final)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in cond.mfcc.parameters())
    from physdiff.inference.config import SamplingConfig
    from physdiff.inference.sampling import sample_spectrograms

    with torch.no_grad():
        c = model.conditioner(inp)  # (3, C)
    sample = sample_spectrograms(model, c, SamplingConfig(), generator=torch.Generator().manual_seed(0),
                                 sampler="ddim", steps=2)
    assert sample.shape == x0.shape


def test_owens_loads_a_local_backbone_state_dict_and_names_a_bad_one(tmp_path):
    from physdiff.models.video import build_backbone

    a = resolve_config("debug").audio
    s = section(OwensConfig)
    donor, _ = build_backbone(s.backbone, s.small_widths, s.small_blocks)
    torch.save({f"backbone.{k}": v for k, v in donor.state_dict().items()}, tmp_path / "cnn.pt")
    net = OwensSoundNet.from_config(section(OwensConfig, pretrained=str(tmp_path / "cnn.pt")), a, num_frames=22)
    for k, v in donor.state_dict().items():
        assert torch.equal(net.cnn.state_dict()[k], v), k
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="bad.pt"):
        OwensSoundNet.from_config(section(OwensConfig, pretrained=str(tmp_path / "bad.pt")), a, num_frames=22)
