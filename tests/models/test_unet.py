"""The U-Net denoiser: shapes at the paper and tiny sizes, exact crop of the padding, conditioning in use."""

import torch

import pytest
from torch.utils.flop_counter import FlopCounterMode

from physdiff.config import resolve_config
from physdiff.models.unet import LinearAttention, OfficialUNet, UNet, unet_from_config


def test_paper_unet_maps_1025x44_to_itself():
    torch.manual_seed(0)
    d = resolve_config("paper").diffusion
    net = unet_from_config(d, cond_dim=512).eval()
    assert isinstance(net, OfficialUNet)
    x = torch.randn(1, 1, 1025, 44)
    with torch.no_grad():
        y = net(x, torch.tensor([500]), torch.randn(1, 512))
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_paper_unet_is_the_official_size():
    """With the official 273-d condition (256 mu + 17 logits) the paper U-Net has the official model's
    parameters and FLOPs: 35.3 M (35.25 M plus the official class's 273-d null embedding, which lives in
    the Conditioner here) and 138 GFLOP per forward at 1025 x 44 (FlopCounterMode, 2 per multiply-add;
    counted on the meta device, so nothing is computed)."""
    d = resolve_config("paper").diffusion
    assert (d.unet_layout, d.attn_heads, d.attn_dim_head, d.mid_attention) == ("official", 8, 32, "none")
    with torch.device("meta"):
        net = unet_from_config(d, cond_dim=273)
        with FlopCounterMode(display=False) as fc:
            net(torch.empty(1, 1, 1025, 44), torch.tensor([500]), torch.empty(1, 273))
    n_params = sum(p.numel() for p in net.parameters())
    assert abs(n_params + 273 - 35.25e6) < 0.01e6, n_params
    assert abs(fc.get_total_flops() / 1e9 - 138.1) < 0.1, fc.get_total_flops()
    attn = [m for m in net.modules() if isinstance(m, LinearAttention)]
    assert len(attn) == 8 and all(m.heads == 8 and m.qkv.out_channels == 3 * 8 * 32 for m in attn)  # every level, both ways


@pytest.mark.parametrize("shape", [(37, 13), (1025 // 8, 44 // 4), (16, 16)])
def test_official_layout_odd_sizes_condition_and_channels_last(shape):
    """Odd sizes go through the official per-level zero padding back to the input's size; time and the
    condition reach the output; channels_last gives the same numbers."""
    torch.manual_seed(0)
    net = OfficialUNet(width=16, channel_mults=(1, 2, 4), attn_levels=(0, 1, 2), cond_dim=6, heads=2, dim_head=8).eval()
    x = torch.randn(2, 1, *shape)
    t, c = torch.tensor([3, 700]), torch.randn(2, 6)
    with torch.no_grad():
        y = net(x, t, c)
        y_c = net(x, t, c + 1.0)
        y_t = net(x, torch.tensor([4, 700]), c)
        net.to(memory_format=torch.channels_last)
        y_cl = net(x.contiguous(memory_format=torch.channels_last), t, c)
    assert y.shape == x.shape
    assert (y - y_c).abs().amax() > 1e-4
    assert (y[0] - y_t[0]).abs().amax() > 1e-6 and torch.equal(y[1], y_t[1])
    assert torch.allclose(y, y_cl, atol=1e-5)
    assert net.final_block.emb is None  # the official final block is not conditioned
    with pytest.raises(ValueError, match="condition of width 6"):
        net(x, t, torch.randn(2, 5))


def test_tiny_keeps_the_physdiff_layout():
    d = resolve_config("tiny").diffusion
    net = unet_from_config(d, cond_dim=8, num_bins=257)
    assert isinstance(net, UNet) and d.attn_heads == 4
    assert all(m.heads == 4 for m in net.modules() if isinstance(m, LinearAttention))
    from physdiff.configlib import ConfigError
    from physdiff.models.config import DiffusionConfig

    with pytest.raises(ValueError, match="freq_input"):
        unet_from_config(DiffusionConfig(freq_input=True), 8, 257)  # the official U-Net has one input channel
    with pytest.raises(ConfigError, match="unet_layout"):
        resolve_config("paper", ["diffusion.freq_input=true"])
    assert resolve_config("paper", ["diffusion.freq_input=true", "diffusion.unet_layout=physdiff"]).diffusion.freq_input


def test_tiny_unet_shape_and_conditioning_matters():
    torch.manual_seed(0)
    cfg = resolve_config("tiny")
    assert (cfg.audio.num_bins, cfg.audio.num_frames) == (257, 32)
    net = unet_from_config(cfg.diffusion, cond_dim=8, num_bins=cfg.audio.num_bins).eval()
    assert 0 not in cfg.diffusion.attn_levels  # no attention at full resolution in tiny
    x = torch.randn(2, 1, 257, 32)
    t = torch.tensor([10, 900])
    with torch.no_grad():
        y1 = net(x, t, torch.zeros(2, 8))
        y2 = net(x, t, torch.ones(2, 8))
        y3 = net(x, torch.tensor([11, 900]), torch.zeros(2, 8))
    assert y1.shape == x.shape
    assert (y1 - y2).abs().amax() > 1e-4  # the condition reaches the output
    assert (y1[0] - y3[0]).abs().amax() > 1e-6 and torch.equal(y1[1], y3[1])  # time is per sample


def test_odd_sizes_pad_reflect_and_crop_exactly():
    torch.manual_seed(0)
    net = UNet(width=8, channel_mults=(1, 2, 4), blocks_per_level=1, attn_levels=(2,), mid_attention="linear",
               cond_dim=0, dim_head=8).eval()
    x = torch.randn(1, 1, 37, 13)
    padded = net.pad(x)
    assert padded.shape[-2:] == (40, 16)
    assert torch.equal(padded[..., :37, :13], x)  # the input is untouched; padding only appended
    assert torch.equal(padded[..., 37:, :13], x[..., 33:36, :].flip(-2))  # reflected, not zeros: no edge step
    t = torch.tensor([3])
    with torch.no_grad():
        y = net(x, t)
        # the same network on the explicitly padded input, cropped: identical values, nothing shifted
        y_full = net(padded, t)
    assert y.shape == x.shape
    assert torch.allclose(y, y_full[..., :37, :13], atol=1e-6)


def test_channels_last_matches_contiguous():
    torch.manual_seed(0)
    cfg = resolve_config("debug", ["diffusion.freq_input=false"])  # any F x N here
    net = unet_from_config(cfg.diffusion, cond_dim=4).eval()
    x = torch.randn(2, 1, 33, 16)
    t, c = torch.tensor([1, 2]), torch.randn(2, 4)
    with torch.no_grad():
        a = net(x, t, c)
        net.to(memory_format=torch.channels_last)
        b = net(x.contiguous(memory_format=torch.channels_last), t, c)
    assert torch.allclose(a, b, atol=1e-5)


def test_frequency_aware_input_keeps_shapes_and_lets_the_condition_write_per_bin():
    """freq_bins > 0: two extra input channels (bin coordinate, Linear(cond) envelope); output still (B, 1, F, N)."""
    import pytest

    torch.manual_seed(0)
    net = UNet(width=8, channel_mults=(1, 2), blocks_per_level=1, attn_levels=(1,), mid_attention="linear",
               cond_dim=6, heads=2, dim_head=4, groups=4, freq_bins=33)
    x, t, c = torch.randn(2, 1, 33, 10), torch.tensor([3, 70]), torch.randn(2, 6)
    out = net(x, t, c)
    assert out.shape == (2, 1, 33, 10) and net.init_conv.in_channels == 3
    with pytest.raises(ValueError, match="33 frequency bins"):
        net(torch.randn(2, 1, 32, 10), t, c)
    # The envelope starts at zero (a plain coordinate channel) and the loss reaches it through the input.
    assert net.envelope.weight.abs().sum() == 0
    (out - torch.randn_like(out)).pow(2).mean().backward()
    assert net.envelope.weight.grad is not None and net.envelope.weight.grad.abs().sum() > 0
    # The coordinate channel breaks frequency-shift equivariance: a shifted input is not a shifted output.
    with torch.no_grad():
        a, b = net(x, t, c), net(torch.roll(x, 4, dims=2), t, c)
    assert not torch.allclose(torch.roll(a, 4, dims=2)[:, :, 8:-8], b[:, :, 8:-8], atol=1e-4)
    cfg = resolve_config("tiny", ["diffusion.freq_input=true"])
    assert unet_from_config(cfg.diffusion, 16, cfg.audio.num_bins).freq_bins == cfg.audio.num_bins
