"""The physics-informed Griffin-Lim start: our loop is torchaudio's given the same start, and the modal phase
of a clip's own modes reconstructs it better than a random start at few iterations."""

from __future__ import annotations

import torch

from physdiff.config import resolve_config
from physdiff.physics import Modes, griffin_lim, log_magnitude, peak_normalize, stft_complex, synthesize_modes
from physdiff.physics.phase import fast_griffin_lim, modal_phase, spectral_convergence


def _clip(cfg):
    freq = torch.tensor([[440.0, 1250.0, 3100.0]])
    modes = Modes(freq, torch.tensor([[-6.0, -12.0, -20.0]]), torch.tensor([[40.0, 80.0, 160.0]]))
    return modes, peak_normalize(synthesize_modes(modes, cfg.sample_rate, cfg.num_samples))  # (1, T)


def test_our_loop_is_torchaudios_given_the_same_start() -> None:
    import torchaudio.functional as AF

    a = resolve_config("tiny").audio
    _, audio = _clip(a)
    mag = stft_complex(audio, a.n_fft, a.hop_length).abs()  # (1, F, N)
    window = torch.hann_window(a.n_fft)
    for rand_init in (False, True):
        torch.manual_seed(5)
        ref = AF.griffinlim(mag, window, a.n_fft, a.hop_length, a.n_fft, 1.0, 12, 0.99, a.num_samples, rand_init)
        torch.manual_seed(5)  # torchaudio's own draw of the start, repeated
        start = torch.rand(mag.shape, dtype=torch.complex64) if rand_init else torch.ones(mag.shape, dtype=torch.complex64)
        ours = fast_griffin_lim(mag, start, a.n_fft, a.hop_length, 12, a.num_samples)
        assert torch.allclose(ours, ref, atol=1e-6), (rand_init, float((ours - ref).abs().max()))


def test_modal_phase_of_the_clips_own_modes_beats_a_random_start() -> None:
    a = resolve_config("tiny").audio
    modes, audio = _clip(a)
    logmag = log_magnitude(audio, a, normalize=False)  # (1, F, N)
    target = stft_complex(audio, a.n_fft, a.hop_length).abs()
    phase = modal_phase(modes, a)
    assert phase.shape == target.shape and torch.allclose(phase.abs(), torch.ones(()), atol=1e-5)
    for iters in (0, 8):
        rand = griffin_lim(logmag, a, seed=0, n_iter=iters)
        phys = griffin_lim(logmag, a, init_phase=phase, n_iter=iters)
        sc_r, sc_p = spectral_convergence(rand, target, a), spectral_convergence(phys, target, a)
        assert float(sc_p) < 0.5 * float(sc_r), (iters, float(sc_p), float(sc_r))
