"""Multi-resolution STFT loss (spectral convergence + log-magnitude L1), the prior stage's objective.

The paper calls its residual-prediction loss multi-resolution; the official code uses one resolution
(see docs/deviations.md). Per resolution (Hann window, centred frames):

    L_sc  = || |S_t| - |S_p| ||_F / || |S_t| ||_F
    L_mag = mean | log|S_t| - log|S_p| |

and the loss is the mean over resolutions of ``sc_weight L_sc + mag_weight L_mag``. Magnitudes are
``sqrt(clamp(|S|^2, 1e-7))``, so silent inputs give finite values and gradients.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = ["MultiResolutionSTFTLoss", "stft_loss_terms"]

_MAG_FLOOR = 1e-7  # on |S|^2 (ParallelWaveGAN's choice): keeps log and sqrt finite for silence


def _magnitude(x: torch.Tensor, n_fft: int, hop: int, win: int, window: torch.Tensor) -> torch.Tensor:
    spec = torch.stft(x, n_fft, hop, win, window=window, center=True, pad_mode="constant", return_complex=True)
    return torch.sqrt(torch.clamp(spec.real**2 + spec.imag**2, min=_MAG_FLOOR))  # (B, F, N)


def stft_loss_terms(
    pred: torch.Tensor, target: torch.Tensor, n_fft: int, hop: int, win: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(spectral convergence, log-magnitude L1) at one resolution, each a scalar averaged over the batch."""
    window = torch.hann_window(win, device=pred.device, dtype=pred.dtype)
    mp = _magnitude(pred, n_fft, hop, win, window)  # (B, F, N)
    mt = _magnitude(target, n_fft, hop, win, window)  # (B, F, N)
    sc = torch.linalg.vector_norm(mt - mp, dim=(-2, -1)) / torch.linalg.vector_norm(mt, dim=(-2, -1))  # (B,)
    mag = (torch.log(mt) - torch.log(mp)).abs().mean(dim=(-2, -1))  # (B,)
    return sc.mean(), mag.mean()


class MultiResolutionSTFTLoss(nn.Module):
    """Mean over resolutions of spectral convergence + log-magnitude L1; ``forward(pred, target)`` -> scalar.

    ``pred`` and ``target`` are ``(B, T)`` (or ``(T,)``). Zero for identical inputs; grows with
    distortion. Default resolutions: FFT 512/1024/2048 with hop = FFT/4 and window = FFT.
    """

    def __init__(
        self,
        fft_sizes: Sequence[int] = (512, 1024, 2048),
        hop_sizes: Sequence[int] | None = None,
        win_lengths: Sequence[int] | None = None,
        sc_weight: float = 1.0,
        mag_weight: float = 1.0,
    ) -> None:
        super().__init__()
        hop_sizes = tuple(hop_sizes) if hop_sizes is not None else tuple(n // 4 for n in fft_sizes)
        win_lengths = tuple(win_lengths) if win_lengths is not None else tuple(fft_sizes)
        if not (len(fft_sizes) == len(hop_sizes) == len(win_lengths)) or not fft_sizes:
            raise ValueError(
                f"fft_sizes {tuple(fft_sizes)}, hop_sizes {hop_sizes}, win_lengths {win_lengths} "
                "must be non-empty and of equal length"
            )
        for n, h, w in zip(fft_sizes, hop_sizes, win_lengths):
            if not (0 < h and 0 < w <= n):
                raise ValueError(f"bad STFT resolution fft={n}, hop={h}, win={w} (need hop > 0, 0 < win <= fft)")
        self.resolutions = list(zip(tuple(fft_sizes), hop_sizes, win_lengths))
        self.sc_weight, self.mag_weight = sc_weight, mag_weight

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.dim() == 1:
            pred, target = pred.unsqueeze(0), target.unsqueeze(0)
        if pred.shape != target.shape or pred.dim() != 2:
            raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} must both be (B, T)")
        total = pred.new_zeros(())
        for n_fft, hop, win in self.resolutions:  # a handful of resolutions, not data
            sc, mag = stft_loss_terms(pred, target, n_fft, hop, win)
            total = total + self.sc_weight * sc + self.mag_weight * mag
        return total / len(self.resolutions)
