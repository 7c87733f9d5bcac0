"""The modal physics parameters of a batch of clips: one damped sinusoid per STFT bin (eq. 4)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["Modes"]


@dataclass
class Modes:
    """Per-bin modes of eq. 4, ``q_i(t) = 10^((p_i - lambda_i t) / 20) sin(2 pi f_i t)``.

    Attributes, each ``(B, D)`` (D = n_fft // 2 + 1 bins for the estimators here):
        freq:  f_i, Hz.
        power: p_i, dB (peak-normalised spectrogram scale: the loudest cell of a clip is 0 dB).
        decay: lambda_i, dB per second (>= 0): the level falls by lambda_i dB each second.
    """

    freq: torch.Tensor
    power: torch.Tensor
    decay: torch.Tensor

    def __post_init__(self) -> None:
        shapes = {tuple(self.freq.shape), tuple(self.power.shape), tuple(self.decay.shape)}
        if len(shapes) != 1 or self.freq.dim() != 2:
            raise ValueError(
                "Modes needs freq, power, decay of one shape (B, D); got "
                f"{tuple(self.freq.shape)}, {tuple(self.power.shape)}, {tuple(self.decay.shape)}"
            )

    # ------------------------------------------------------------------ shape and packing
    @property
    def batch_size(self) -> int:
        return self.freq.shape[0]

    @property
    def num_modes(self) -> int:
        return self.freq.shape[1]

    def __len__(self) -> int:
        return self.batch_size

    def __getitem__(self, index: Any) -> "Modes":
        """Select clips; an integer index keeps the batch dimension (returns B = 1)."""
        if isinstance(index, int):
            index = slice(index, index + 1) if index != -1 else slice(-1, None)
        return Modes(self.freq[index], self.power[index], self.decay[index])

    def stack(self) -> torch.Tensor:
        """``(B, 3, D)`` in the order f, p, lambda."""
        return torch.stack([self.freq, self.power, self.decay], dim=1)  # (B, 3, D)

    @classmethod
    def from_stacked(cls, x: torch.Tensor) -> "Modes":
        """Inverse of :meth:`stack`: ``(B, 3, D)`` (or ``(3, D)``) -> Modes."""
        if x.dim() == 2:
            x = x.unsqueeze(0)
        if x.dim() != 3 or x.shape[1] != 3:
            raise ValueError(f"Modes.from_stacked expects (B, 3, D), got {tuple(x.shape)}")
        return cls(x[:, 0], x[:, 1], x[:, 2])

    @classmethod
    def cat(cls, items: list["Modes"]) -> "Modes":
        """Concatenate along the batch."""
        return cls(
            torch.cat([m.freq for m in items]), torch.cat([m.power for m in items]), torch.cat([m.decay for m in items])
        )

    # ------------------------------------------------------------------ device / dtype
    def to(self, *args: Any, **kwargs: Any) -> "Modes":
        """Like ``Tensor.to``: device and/or dtype."""
        return Modes(self.freq.to(*args, **kwargs), self.power.to(*args, **kwargs), self.decay.to(*args, **kwargs))

    def detach(self) -> "Modes":
        return Modes(self.freq.detach(), self.power.detach(), self.decay.detach())

    @property
    def device(self) -> torch.device:
        return self.freq.device

    @property
    def dtype(self) -> torch.dtype:
        return self.freq.dtype
