"""The metric classifier's training augmentation: shapes kept, each perturbation does what it says,
identity when disabled, reproducible from a seeded generator."""

import math

import torch

from physdiff.eval.config import ClassifierConfig
from physdiff.eval.spec_augment import SpecAugmentSettings, augment_spectrogram, settings_from_config


def _spec(b: int = 6, f: int = 257, n: int = 32) -> torch.Tensor:
    torch.manual_seed(0)
    return (torch.rand(b, 1, f, n) - 0.5) * 0.6  # (B, 1, F, N), away from the [-1, 1] clamps


def test_disabled_is_identity():
    x = _spec()
    assert augment_spectrogram(x, SpecAugmentSettings()) is x
    off = ClassifierConfig(aug_gain_db=0, aug_shift=0, aug_freq_mask=0, aug_time_mask=0)
    assert not settings_from_config(off, type("A", (), {"spec_min": -18.4, "spec_max": 5.95})).enabled


def test_shape_kept_and_reproducible():
    x = _spec()
    s = SpecAugmentSettings(gain=0.1, shift=0.06, freq_mask=0.12, freq_masks=2, time_mask=0.2)
    a = augment_spectrogram(x, s, torch.Generator().manual_seed(3))
    b = augment_spectrogram(x, s, torch.Generator().manual_seed(3))
    assert a.shape == x.shape and torch.equal(a, b)
    assert not torch.equal(a, x) and a.abs().max() <= 1.0


def test_gain_is_a_constant_offset_per_clip():
    x = _spec()
    y = augment_spectrogram(x, SpecAugmentSettings(gain=0.2), torch.Generator().manual_seed(0))
    d = y - x  # (B, 1, F, N): one value per clip, within +-gain, not all equal
    per_clip = d.flatten(1)
    assert torch.allclose(per_clip, per_clip[:, :1].expand_as(per_clip), atol=1e-6)
    assert per_clip[:, 0].abs().max() <= 0.2 and per_clip[:, 0].std() > 0
    assert torch.allclose(y.mean(dim=(1, 2, 3)) - x.mean(dim=(1, 2, 3)), per_clip[:, 0], atol=1e-5)


def test_gain_in_db_converts_to_normalised_units():
    audio = type("A", (), {"spec_min": -18.420681, "spec_max": 5.9540715})
    s = settings_from_config(ClassifierConfig(aug_gain_db=20.0), audio)
    assert math.isclose(s.gain, math.log(10.0) * 2.0 / (5.9540715 + 18.420681), rel_tol=1e-9)  # 20 dB = ln 10 nats


def test_time_shift_moves_the_onset_and_repeats_edges():
    x = torch.zeros(64, 1, 8, 32)
    x[..., 10] = 1.0  # an onset at frame 10
    y = augment_spectrogram(x, SpecAugmentSettings(shift=0.1), torch.Generator().manual_seed(0))  # <= 3 frames
    onset = y[:, 0, 0].argmax(-1)  # (B,)
    assert ((onset - 10).abs() <= 3).all() and (onset != 10).any()
    assert torch.equal(y.sum(dim=-1), x.sum(dim=-1))  # the onset is moved, not lost or duplicated


def test_masks_fill_whole_bands_with_the_clip_mean():
    x = _spec(b=16)
    y = augment_spectrogram(x, SpecAugmentSettings(freq_mask=0.2, freq_masks=1), torch.Generator().manual_seed(1))
    fill = x.mean(dim=(2, 3))  # (B, 1)
    changed = (y != x).any(dim=-1)[:, 0]  # (B, F): changed frequency rows
    for i in range(x.shape[0]):
        rows = changed[i].nonzero().flatten()
        if rows.numel():
            assert rows.max() - rows.min() + 1 == rows.numel() <= round(0.2 * 257)  # one contiguous band
            assert torch.allclose(y[i, 0, rows], fill[i].expand(rows.numel(), 32))  # whole rows, every frame
    assert changed.any()
    t = augment_spectrogram(x, SpecAugmentSettings(time_mask=0.25), torch.Generator().manual_seed(1))
    cols = (t != x).any(dim=2)[:, 0]  # (B, N): changed frames
    assert cols.any() and (cols.sum(-1) <= 8).all()
    i = int(cols.sum(-1).argmax())
    assert torch.allclose(t[i, 0][:, cols[i]], fill[i].expand(257, int(cols[i].sum())))
