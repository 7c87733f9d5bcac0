"""The U-Net denoiser: shapes at the paper and tiny sizes, exact crop of the padding, conditioning in use."""

import torch

from physdiff.config import resolve_config
from physdiff.models.unet import UNet, unet_from_config


def test_paper_unet_maps_1025x44_to_itself():
    torch.manual_seed(0)
    d = resolve_config("paper").diffusion
    net = unet_from_config(d, cond_dim=512).eval()
    n_params = sum(p.numel() for p in net.parameters())
    assert 30e6 < n_params < 45e6  # official: 35.3 M; ours 39.7 M (see docs/deviations.md)
    x = torch.randn(1, 1, 1025, 44)
    with torch.no_grad():
        y = net(x, torch.tensor([500]), torch.randn(1, 512))
    assert y.shape == x.shape and torch.isfinite(y).all()


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
