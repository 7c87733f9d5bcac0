"""Clip augmentation: one draw per clip, identical on all its frames; different across clips; none at eval."""

from __future__ import annotations

import torch

from physdiff.config import resolve_config
from physdiff.data.augment import apply_clip_params, augment_clips, resize_clips, sample_clip_params


def _clips(b: int = 3, t: int = 6, h: int = 40, w: int = 40, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, t, 3, h, w, generator=g)  # (B, T, 3, H, W) in [0, 1]


def _video_cfg(**over):
    cfg = resolve_config("debug", [f"video.{k}={v}" for k, v in over.items()]).video
    return cfg


def test_identical_frames_stay_identical_and_clips_differ() -> None:
    cfg = _video_cfg(hue=0.1)
    frame = _clips(1, 1)[0, 0]  # (3, H, W)
    x = frame.expand(4, 5, 3, 40, 40).clone()  # (B=4, T=5, ...): 4 copies of one 5-frame still clip
    y = augment_clips(x, cfg, size=32, generator=torch.Generator().manual_seed(1))  # (4, 5, 3, 32, 32)
    assert y.shape == (4, 5, 3, 32, 32)
    for b in range(4):
        for t in range(1, 5):
            assert torch.equal(y[b, t], y[b, 0]), (b, t)  # same crop, flip and colour on every frame
    # ... while the clips (same pictures) got different draws
    assert all(not torch.allclose(y[0, 0], y[b, 0]) for b in range(1, 4))
    assert y.min() >= 0 and y.max() <= 1


def test_each_frame_gets_its_clips_transform() -> None:
    """Augmenting a whole clip equals augmenting each of its frames alone with that clip's parameters."""
    cfg = _video_cfg(hue=0.1)
    x = _clips(3, 6)
    params = sample_clip_params(3, cfg, torch.Generator().manual_seed(7))
    y = apply_clip_params(x, params, size=24)  # (3, 6, 3, 24, 24)
    for b in range(3):
        pb = params.select(slice(b, b + 1))
        for t in range(6):
            alone = apply_clip_params(x[b : b + 1, t : t + 1], pb, size=24)[0, 0]  # (3, 24, 24)
            # The per-frame contrast mean makes a frame's result independent of the other frames.
            torch.testing.assert_close(y[b, t], alone, atol=1e-6, rtol=0)


def test_crop_flip_geometry() -> None:
    """A full-frame 'crop' with a flip mirrors the frame exactly; colour jitter off leaves values alone."""
    cfg = _video_cfg(crop_scale=[1.0, 1.0], crop_ratio=[1.0, 1.0], brightness=0.0, contrast=0.0, saturation=0.0)
    x = _clips(8, 2, 16, 16)
    params = sample_clip_params(8, cfg, torch.Generator().manual_seed(3))
    y = apply_clip_params(x, params, size=16)
    flipped = params.theta[:, 0, 0] < 0  # (8,)
    assert 0 < int(flipped.sum()) < 8  # both outcomes occur for this seed
    for b in range(8):
        want = x[b].flip(-1) if flipped[b] else x[b]
        torch.testing.assert_close(y[b], want, atol=1e-5, rtol=0)


def test_seeded_draws_are_reproducible_and_eval_is_deterministic() -> None:
    cfg = _video_cfg()
    x = _clips(2, 3)
    a = augment_clips(x, cfg, 32, torch.Generator().manual_seed(5))
    b = augment_clips(x, cfg, 32, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    e1, e2 = resize_clips(x, 32), resize_clips(x, 32)
    assert torch.equal(e1, e2) and e1.shape == (2, 3, 3, 32, 32)
    assert resize_clips(x, 40) is x  # already the right size: untouched


def test_fused_colour_jitter_matches_torchvision_ops() -> None:
    """Brightness -> contrast -> saturation as one colour matrix equals torchvision's ops (away from clamping)."""
    import torchvision.transforms.v2.functional as TF

    cfg = _video_cfg(crop_scale=[1.0, 1.0], crop_ratio=[1.0, 1.0], flip=False, brightness=0.1, contrast=0.1,
                     saturation=0.1)
    x = 0.4 + 0.2 * _clips(4, 3, 16, 16)  # mid-range values: no op clamps
    params = sample_clip_params(4, cfg, torch.Generator().manual_seed(11))
    y = apply_clip_params(x, params, size=16)
    for b in range(4):
        want = TF.adjust_brightness(x[b], float(params.brightness[b]))  # (T, 3, H, W): per frame, as images
        want = TF.adjust_contrast(want, float(params.contrast[b]))
        want = TF.adjust_saturation(want, float(params.saturation[b]))
        torch.testing.assert_close(y[b], want, atol=1e-5, rtol=0)
