"""physdiff: physics-driven diffusion for impact sound synthesis from videos (Su et al., CVPR 2023).

Building blocks (``physics``: modal DSP, residual noise, STFT losses; ``world``: the synthetic
physics world; ``data``: layout parsing, shards and readers) -> models -> training recipes.
"""

import os as _os

# OpenMP threads that spin-wait at every parallel region are catastrophic on a small, shared CPU:
# measured on the 2-core machines here with a second process busy, a 512x512 rfft or a 256x256
# matmul takes ~8-16 ms with 2 spinning threads instead of ~0.2 ms (a prior-stage training step
# went from 2.9 s to 0.08 s with PASSIVE). It must be set before torch loads its OpenMP runtime, so
# it lives here (every physdiff module imports this package first); a user's own setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
