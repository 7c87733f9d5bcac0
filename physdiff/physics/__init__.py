"""Physics core: modal estimation and synthesis (Sec. 3.1, eq. 4), residual noise (eqs. 5-6),
multi-resolution STFT loss, and the spectrogram helpers every stage shares. All torch, batched,
device-following, no Python loops over bins or modes."""

from physdiff.physics.estimate import estimate_modes, get_estimator, list_estimators, register_estimator
from physdiff.physics.losses import MultiResolutionSTFTLoss
from physdiff.physics.modes import Modes
from physdiff.physics.residual import ResidualNoise, band_edges, band_noise, modal_plus_residual, synthesize_residual
from physdiff.physics.spectral import (
    bin_centers,
    db_spectrogram,
    denormalize_spectrogram,
    frame_times,
    griffin_lim,
    log_magnitude,
    normalize_spectrogram,
    peak_normalize,
    spectrogram_target,
    spectrogram_to_audio,
    stft_complex,
    stft_magnitude,
)
from physdiff.physics.synth import synthesize_modes

__all__ = [
    "Modes",
    "estimate_modes",
    "list_estimators",
    "get_estimator",
    "register_estimator",
    "synthesize_modes",
    "band_edges",
    "band_noise",
    "synthesize_residual",
    "modal_plus_residual",
    "ResidualNoise",
    "MultiResolutionSTFTLoss",
    "peak_normalize",
    "stft_complex",
    "stft_magnitude",
    "db_spectrogram",
    "log_magnitude",
    "normalize_spectrogram",
    "denormalize_spectrogram",
    "griffin_lim",
    "spectrogram_target",
    "spectrogram_to_audio",
    "bin_centers",
    "frame_times",
]
