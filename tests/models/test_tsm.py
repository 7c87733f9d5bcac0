"""Temporal shift: exact channel/time movement on a known tensor, and its effect inside the video encoder."""

import pytest
import torch
from torchvision.models import resnet18, resnet50

from physdiff.config import resolve_config
from physdiff.models.tsm import TemporalShiftConv2d, add_temporal_shift, temporal_shift
from physdiff.models.video import VideoEncoder, video_feature_dim


def _known(b=2, t=5, c=16):
    # value = 1000*clip + 10*frame + channel + 1 (never 0, so zero padding is visible)
    v = torch.zeros(b, t, c, 1, 1)
    for i in range(b):
        for j in range(t):
            for k in range(c):
                v[i, j, k] = 1000 * i + 10 * j + k + 1
    return v.reshape(b * t, c, 1, 1)


def test_shift_moves_one_eighth_each_way():
    b, t, c = 2, 5, 16
    out = temporal_shift(_known(b, t, c), t, fold_div=8).reshape(b, t, c)
    x = _known(b, t, c).reshape(b, t, c)
    fold = c // 8  # 2 channels each way
    for j in range(t):
        # channels [0, fold): frame j holds frame j+1 (shift backward in time); the last frame gets zeros
        want_back = x[:, j + 1, :fold] if j + 1 < t else torch.zeros(b, fold)
        assert torch.equal(out[:, j, :fold], want_back)
        # channels [fold, 2 fold): frame j holds frame j-1 (shift forward); the first frame gets zeros
        want_fwd = x[:, j - 1, fold : 2 * fold] if j > 0 else torch.zeros(b, fold)
        assert torch.equal(out[:, j, fold : 2 * fold], want_fwd)
        assert torch.equal(out[:, j, 2 * fold :], x[:, j, 2 * fold :])  # 3/4 of the channels untouched
    # clips never leak into each other: clip 1's values (>= 1000) stay in clip 1
    assert (out[0] < 1000).all() and ((out[1] >= 1000) | (out[1] == 0)).all()


def test_shift_keeps_channels_last_and_rejects_bad_batch():
    x = torch.randn(2 * 4, 16, 3, 3).contiguous(memory_format=torch.channels_last)
    y = temporal_shift(x, 4)
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(y, temporal_shift(x.contiguous(), 4))
    with pytest.raises(ValueError, match="multiple of num_frames"):
        temporal_shift(torch.randn(7, 16, 2, 2), 4)


def test_shift_conv_is_conv_of_shifted_input_and_keeps_keys():
    conv = torch.nn.Conv2d(16, 8, 3, padding=1)
    sc = TemporalShiftConv2d.from_conv(conv, num_frames=4, fold_div=8)
    x = torch.randn(8, 16, 5, 5)
    assert torch.allclose(sc(x), conv(temporal_shift(x, 4, 8)), atol=1e-6)
    net = resnet50(weights=None)
    keys = set(net.state_dict())
    assert add_temporal_shift(net, 22, 8) == 16  # every Bottleneck of resnet50
    assert set(net.state_dict()) == keys  # torchvision checkpoints still load as they are


def test_encoder_mixes_time_only_through_shifts():
    torch.manual_seed(0)
    cfg = resolve_config("tiny").video  # resnet_small: 4 blocks -> receptive field +-4 frames
    enc = VideoEncoder.from_config(cfg).eval()
    frames = torch.rand(1, cfg.num_frames, 3, 32, 32)
    with torch.no_grad():
        base = enc.frame_features(frames)[0]  # (T, D)
        frames2 = frames.clone()
        frames2[0, 10] = torch.rand(3, 32, 32)
        changed = (enc.frame_features(frames2)[0] - base).abs().amax(-1) > 1e-6  # (T,)
        nu, logits = enc(frames)
    assert changed[6:15].all() and not changed[:6].any() and not changed[15:].any()
    assert nu.shape == (1, video_feature_dim(cfg)) and logits.shape == (1, 17)


def test_pretrained_state_dict_loads_and_bad_file_is_named(tmp_path):
    src = resnet18(weights=None)
    path = tmp_path / "r18.pt"
    torch.save(src.state_dict(), path)
    enc = VideoEncoder("resnet18", num_frames=4)
    dropped = enc.load_pretrained(path)
    assert dropped == ["fc.weight", "fc.bias"]
    assert torch.equal(enc.backbone.layer3[1].conv1.weight, src.layer3[1].conv1.weight)
    bad = tmp_path / "small.pt"
    torch.save({"conv1.weight": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="small.pt"):
        enc.load_pretrained(bad)
    with pytest.raises(FileNotFoundError, match="nothere.pt"):
        enc.load_pretrained(tmp_path / "nothere.pt")
