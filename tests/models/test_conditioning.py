"""Condition vectors of every variant, and classifier-free-guidance dropout to the learned null condition."""

import pytest
import torch

from physdiff.config import resolve_config
from physdiff.models.conditioning import Conditioner


def _inputs(cfg, b, nu_dim=128):
    d, m = cfg.audio.num_bins, cfg.prior.residual_dims
    g = torch.Generator().manual_seed(1)
    return {
        "freq": torch.arange(d).float().repeat(b, 1) * cfg.audio.sample_rate / cfg.audio.n_fft,
        "power": -80 * torch.rand(b, d, generator=g), "decay": 400 * torch.rand(b, d, generator=g),
        "res_weight": torch.rand(b, m, generator=g), "res_decay": 100 + 400 * torch.rand(b, m, generator=g),
        "nu": torch.randn(b, nu_dim, generator=g), "logits": torch.randn(b, 17, generator=g),
        "label": torch.randint(0, 17, (b,), generator=g),
        "spec": torch.rand(b, 1, d, cfg.audio.num_frames, generator=g) * 2 - 1,
    }


@pytest.mark.parametrize("variant, extra", [("ours", 64), ("video", 0), ("video_label", 32), ("video_spec", 64)])
def test_variants_build_their_condition(variant, extra):
    cfg = resolve_config("tiny", [f"diffusion.variant={variant}"])
    cond = Conditioner.from_config(cfg, nu_dim=128).eval()
    c = cond(_inputs(cfg, 3))
    assert c.shape == (3, cfg.diffusion.visual_dim + extra) == (3, cond.cond_dim)


def test_logits_visual_input_is_the_official_17d():
    cfg = resolve_config("tiny", ["diffusion.variant=video", "diffusion.visual_input=logits"])
    cond = Conditioner.from_config(cfg, nu_dim=128).eval()
    inp = _inputs(cfg, 2)
    assert torch.equal(cond(inp), inp["logits"])


def test_missing_input_is_named():
    cfg = resolve_config("tiny", ["diffusion.variant=video_label"])
    cond = Conditioner.from_config(cfg, nu_dim=128)
    inp = _inputs(cfg, 2)
    del inp["label"]
    with pytest.raises(KeyError, match="label"):
        cond(inp)


def test_dropout_really_drops_to_the_null_condition():
    cfg = resolve_config("tiny")
    cond = Conditioner.from_config(cfg, nu_dim=128).train()
    b, p = 2000, 0.3
    inp = _inputs(cfg, b)
    g = torch.Generator().manual_seed(0)
    c = cond(inp, drop_prob=p, generator=g)
    full = cond.encode(inp)
    is_null = (c == cond.null).all(-1)  # (B,)
    is_full = torch.isclose(c, full).all(-1)
    assert (is_null ^ is_full).all()  # each row is exactly one of the two
    assert abs(is_null.float().mean().item() - p) < 0.04  # binomial sd ~ 0.01
    c.sum().backward()
    assert cond.null.grad is not None and torch.allclose(cond.null.grad, torch.full_like(cond.null, float(is_null.sum())))
    # eval / p = 0: never dropped
    cond.eval()
    assert torch.allclose(cond(inp, drop_prob=0.0), full)
    assert torch.equal(cond.null_condition(4), cond.null.expand(4, -1))
