"""A physics-informed start for Griffin-Lim: the phase of the clip's own modal resynthesis (eq. 4).

Griffin-Lim recovers a waveform from a magnitude spectrogram by alternating projections, starting from a
random phase. At inference physdiff already holds physics parameters for every clip -- the modes (f, p, λ)
of the training clip retrieved by ν: one damped sinusoid per bin -- so it can start from the phase of their
eq. 4 resynthesis instead, which is already coherent across frames at the modal frequencies::

    phase = modal_phase(modes, cfg.audio)                          # (B, F, N) complex, |.| = 1
    audio = griffin_lim(logmag, cfg.audio, init_phase=phase)       # the same fast Griffin-Lim, another start

``sampling.phase_init`` chooses it (``random`` | ``physics``); bench/phase.py measures both at 8, 32 and
100 iterations.
"""

from __future__ import annotations

from typing import Any

import torch

from physdiff.physics.modes import Modes
from physdiff.physics.spectral import fast_griffin_lim, peak_normalize, stft_complex  # noqa: F401  (re-exported)
from physdiff.physics.synth import synthesize_modes


def modal_phase(modes: Modes | torch.Tensor, cfg: Any) -> torch.Tensor:
    """Unit phasors of the STFT of the eq.-4 resynthesis of ``modes`` ((B, 3, D) or Modes): (B, F, N) complex.

    Bins where the resynthesis is silent get phase 0 (a phasor of 1), where the magnitude carries no phase.
    """
    if not isinstance(modes, Modes):
        modes = Modes.from_stacked(torch.as_tensor(modes).float())
    with torch.no_grad():
        audio = peak_normalize(synthesize_modes(modes, cfg.sample_rate, cfg.num_samples))  # (B, T)
        spec = stft_complex(audio, cfg.n_fft, cfg.hop_length)  # (B, F, N)
    mag = spec.abs()
    return torch.where(mag > 1e-12, spec / mag.clamp_min(1e-12), torch.ones_like(spec))


def spectral_convergence(audio: torch.Tensor, target_mag: torch.Tensor, cfg: Any) -> torch.Tensor:
    """|| S - |STFT(x)| ||_F / || S ||_F per clip: how well a waveform realises the magnitude S. (B,)."""
    mag = stft_complex(audio, cfg.n_fft, cfg.hop_length).abs()  # (B, F, N)
    return (target_mag - mag).flatten(1).norm(dim=1) / target_mag.flatten(1).norm(dim=1).clamp_min(1e-12)
