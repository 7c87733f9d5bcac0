"""Config sections ``sampling`` (how spectrograms are sampled, everywhere) and ``generate`` (the generate stage).

One section holds every sampler knob, so the evaluation's Table 1 rows, the generate stage, the
``generate`` / ``edit`` commands and the benchmarks sample the same way unless told otherwise
(flags such as ``--steps`` override single fields). Defaults are the paper's: ancestral DDPM over all
T steps, eta 1, no guidance, x0 clipped to [-1, 1] (the official sampler).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from physdiff.configlib import ConfigError, nonsemantic

SAMPLERS = ("ddpm", "ddim")


@dataclass
class SamplingConfig:
    """The sampler of :func:`physdiff.inference.sampling.sample_spectrograms` (k-diffusion-style pure samplers)."""

    sampler: str = "ddpm"  # "ddpm" (ancestral, eq. 9 with eta = 1) | "ddim" (Song et al. 2021)
    steps: int = 0  # 0 = all T steps
    eta: float = 1.0  # noise temperature: sigma_t = eta * sqrt(posterior variance) (eq. 9)
    guidance_scale: float = 1.0  # classifier-free guidance w (1 = plain conditional sampling)
    clip_x0: bool = True  # clip the predicted x0 to [-1, 1] at every step (official)
    seed: int = 0  # the noise of every sampled clip: results are reproducible
    # Griffin-Lim's start: "random" phase, or "physics": the phase of the eq.-4 resynthesis of the retrieved
    # training clip's modes (physdiff.physics.phase; rows without a retrieved clip start at random). physics is
    # the default: on the main job's 69 test clips it is better at 8, 32 and 100 iterations (bench/phase.py,
    # docs/results.md: MR-STFT to the recording -0.07, spectral convergence -0.006, both intervals exclude 0)
    phase_init: str = "physics"
    batch_size: int = nonsemantic(64)  # clips per sampler call (memory only; the noise does not depend on it)

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        # a CPU budget: 50 deterministic DDIM steps (Table 3 shows the cost of each step count)
        "tiny": {"sampler": "ddim", "steps": 50, "eta": 0.0},
        "debug": {"steps": 10},
    }

    def validate(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"sampling.sampler must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        if self.steps < 0:
            raise ConfigError(f"sampling.steps must be >= 0 (0 = all T steps), got {self.steps}")
        if not (math.isfinite(self.eta) and self.eta >= 0):
            raise ConfigError(f"sampling.eta must be a finite number >= 0, got {self.eta}")
        if not (math.isfinite(self.guidance_scale) and self.guidance_scale >= 0):
            raise ConfigError(f"sampling.guidance_scale must be a finite number >= 0, got {self.guidance_scale}")
        if self.seed < 0:
            raise ConfigError(f"sampling.seed must be >= 0, got {self.seed}")
        if self.phase_init not in ("random", "physics"):
            raise ConfigError(f"sampling.phase_init must be random or physics, got {self.phase_init!r}")
        if self.batch_size < 1:
            raise ConfigError(f"sampling.batch_size must be >= 1, got {self.batch_size}")

    def describe(self, num_timesteps: int) -> str:
        """``DDIM-50 (eta 0, guidance 1)``: the sampler as a report names it."""
        steps = self.steps or num_timesteps
        return f"{self.sampler.upper()}-{steps} (eta {self.eta:g}, guidance {self.guidance_scale:g})"


@dataclass
class GenerateConfig:
    """The generate stage: sound for the silent test videos (one folder per video)."""

    split: str = "test"  # the split whose videos the stage renders
    onsets: str = "annotated"  # "annotated" (the split's annotated times) | "auto" (strikes found in each video)

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}

    def validate(self) -> None:
        if self.split not in ("train", "val", "test"):
            raise ConfigError(f"generate.split must be train, val or test, got {self.split!r}")
        if self.onsets not in ("annotated", "auto"):
            raise ConfigError(f"generate.onsets must be annotated or auto, got {self.onsets!r}")
