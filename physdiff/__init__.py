"""physdiff: physics-driven diffusion for impact sound synthesis from videos (Su et al., CVPR 2023).

Building blocks (``physics``: modal DSP, residual noise, STFT losses; ``world``: the synthetic
physics world; ``data``: layout parsing, shards and readers) -> models -> training recipes.
"""

__version__ = "0.1.0"
