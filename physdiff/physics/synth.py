"""Modal synthesis, eq. 4: ``y(t) = sum_i 10^((p_i - lambda_i t) / 20) sin(2 pi f_i t)`` (theta = 0).

Block-matrix evaluation, exact up to rounding. Write each mode as the imaginary part of a complex
exponential, ``q_i(t) = Im(A_i e^{s_i t})`` with ``s_i = -lambda_i ln10/20 + i 2 pi f_i``, and split
time into J blocks of L samples, ``t = t_j + tau_l``. Then ``e^{s t} = e^{s t_j} e^{s tau_l}``, so

    y[j L + l] = Im( sum_i C[j, i] Z[i, l] ),   C = A e^{s t_j}  (J x D),   Z = e^{s tau_l}  (D x L)

is one complex matrix product per clip (BLAS), instead of D x T sines and exponentials. Every factor
is evaluated directly (no recurrence, so no error build-up); the block phases ``f t_j`` are reduced
modulo 1 in float64, which makes float32 synthesis ~10x more accurate than evaluating
``sin(2 pi f t)`` in float32. With L ~ sqrt(T), memory is ``O(B D sqrt(T))``, never ``B x D x T``.
Clips are processed in groups under a fixed element budget; with autograd, each group is
checkpointed (recomputed in the backward pass), so peak memory does not grow with the batch either.
"""

from __future__ import annotations

import math

import torch
from torch.utils.checkpoint import checkpoint

from physdiff.physics.modes import Modes
from physdiff.physics.spectral import LN10_OVER_20

__all__ = ["synthesize_modes", "default_block_size"]

# Complex elements per group for the (B, D, L) and (B, J, D) factors: 2 M complex64 = 16 MB each.
_GROUP_ELEMENTS = 1 << 21


def default_block_size(num_samples: int) -> int:
    """Samples per time block: ceil(sqrt(T)) balances the (J, D) and (D, L) factors (105 for 11025)."""
    return max(1, math.isqrt(max(0, num_samples - 1)) + 1)


def _synth_group(freq: torch.Tensor, power: torch.Tensor, decay: torch.Tensor, sample_rate: float,
                 num_samples: int, block: int) -> torch.Tensor:
    """Eq. 4 for one group of clips: ``(G, D)`` params -> ``(G, T)``."""
    G, D = freq.shape
    rdtype = freq.dtype
    J = -(-num_samples // block)  # blocks
    tau = torch.arange(block, device=freq.device, dtype=rdtype) / sample_rate  # (L,)
    # Z[i, l] = e^{s_i tau_l}: phases below 2 pi f L / sr, accurate in the working precision.
    # torch.polar(|z|, angle) builds the complex numbers from real, vectorised exp / cos / sin
    # (torch's complex exp is several times slower on CPU).
    Z = torch.polar(
        torch.exp((-LN10_OVER_20 * decay)[..., None] * tau), (2.0 * math.pi * freq)[..., None] * tau
    )  # (G, D, L)
    # C[j, i] = A_i e^{s_i t_j}: the long phases f t_j are reduced modulo one cycle in float64.
    t0 = torch.arange(J, device=freq.device, dtype=torch.float64) * (block / sample_rate)  # (J,)
    cycles = torch.remainder(freq.double()[:, None, :] * t0[None, :, None], 1.0).to(rdtype)  # (G, J, D)
    t0r = t0.to(rdtype)[None, :, None]  # (1, J, 1)
    log_amp = torch.addcmul((LN10_OVER_20 * power)[:, None, :], (-LN10_OVER_20 * decay)[:, None, :], t0r)  # (G, J, D)
    C = torch.polar(torch.exp(log_amp), (2.0 * math.pi) * cycles)  # (G, J, D)
    Y = torch.matmul(C, Z)  # (G, J, L) complex
    return Y.imag.reshape(G, J * block)[:, :num_samples]  # (G, T)


def synthesize_modes(
    modes: Modes, sample_rate: float, num_samples: int, *, chunk_size: int | None = None
) -> torch.Tensor:
    """Eq. 4 summed over modes (sin, theta = 0) -> audio ``(B, T)``; differentiable in f, p, lambda.

    ``t = n / sample_rate`` for n = 0..num_samples-1. Not peak-normalised (the official code divides
    by the peak afterwards; use :func:`physdiff.physics.spectral.peak_normalize`). ``chunk_size``: the
    time block length L in samples (None: ceil(sqrt(T))); the result does not depend on it beyond
    rounding. Device and dtype (float32 / float64) follow ``modes``.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    block = chunk_size or default_block_size(num_samples)
    if block < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    freq, power, decay = modes.freq, modes.power, modes.decay
    if not freq.is_floating_point():
        freq, power, decay = freq.float(), power.float(), decay.float()
    B, D = freq.shape
    J = -(-num_samples // block)
    group = max(1, _GROUP_ELEMENTS // max(1, D * (block + J)))  # clips per group
    needs_grad = torch.is_grad_enabled() and any(x.requires_grad for x in (freq, power, decay))
    outs = []
    for s in range(0, B, group):  # groups of clips bound memory; all modes of a clip at once
        args = (freq[s : s + group], power[s : s + group], decay[s : s + group], sample_rate, num_samples, block)
        if needs_grad:
            outs.append(checkpoint(_synth_group, *args, use_reentrant=False))
        else:
            outs.append(_synth_group(*args))
    return outs[0] if len(outs) == 1 else torch.cat(outs)  # (B, T)
