"""Multi-resolution STFT loss: zero for identical inputs, monotone in distortion, stable for silence."""

from __future__ import annotations

import pytest
import torch

from physdiff.physics import MultiResolutionSTFTLoss
from tests.physics.signals import SR, T, make_clips, random_modes


@pytest.fixture(scope="module")
def clips() -> torch.Tensor:
    freq, power, decay = random_modes(4, 5, seed=0)
    x = make_clips(freq, power, decay)
    return x / x.abs().amax(-1, keepdim=True)


def test_zero_for_identical_inputs(clips):
    loss = MultiResolutionSTFTLoss()
    value = loss(clips, clips.clone())
    assert value.dim() == 0 and value.item() == 0.0


def test_grows_with_distortion(clips):
    loss = MultiResolutionSTFTLoss()
    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(clips.shape, generator=gen)
    values = [loss(clips + level * noise, clips).item() for level in (1e-4, 1e-3, 1e-2, 1e-1)]
    assert all(a < b for a, b in zip(values, values[1:])), values
    # a frequency shift is a distortion too
    t = torch.arange(T) / SR
    a = torch.sin(2 * torch.pi * 1000 * t)[None]
    shifts = [loss(torch.sin(2 * torch.pi * (1000 + d) * t)[None], a).item() for d in (0.0, 20.0, 100.0)]
    assert shifts[0] == 0.0 and shifts[0] < shifts[1] < shifts[2]


def test_silent_inputs_are_stable(clips):
    loss = MultiResolutionSTFTLoss(fft_sizes=(256, 512), hop_sizes=(64, 128), win_lengths=(256, 400))
    silent = torch.zeros_like(clips)
    assert loss(silent, silent).item() == 0.0
    pred = clips.clone().requires_grad_()
    for target in (silent, clips):
        value = loss(pred, target)
        assert torch.isfinite(value)
        (grad,) = torch.autograd.grad(value, pred)
        assert torch.isfinite(grad).all()
    zero_pred = torch.zeros_like(clips, requires_grad=True)
    value = loss(zero_pred, clips)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(zero_pred.grad).all()


def test_validation():
    with pytest.raises(ValueError):
        MultiResolutionSTFTLoss(fft_sizes=(512, 1024), hop_sizes=(128,))
    with pytest.raises(ValueError):
        MultiResolutionSTFTLoss()(torch.zeros(2, 100), torch.zeros(3, 100))
    # (T,) inputs are one clip
    assert MultiResolutionSTFTLoss()(torch.ones(4000), torch.ones(4000)).item() == 0.0
