"""The synthesizer (paper Sec. 3.4): frames -> nu -> retrieved latent -> sampled spectrogram -> sound.

    synth = Synthesizer.from_run("data/runs/diffusion-ours-0123456789")
    nu, logits = synth.encode_frames(frames)               # (B, T, 3, S, S) uint8 -> (B, D_nu), (B, 17)
    cond, keys, dist = synth.conditions(nu, logits)        # the nearest training clip's mu completes c
    spec = synth.sample(cond, synth.cfg.sampling)          # (B, 1, F, N), the one sampling entry point
    audio = synth.to_audio(spec)                           # Griffin-Lim, peak-normalised (B, T)

It loads only finished artifacts (the diffusion run, the video run it was trained on, the diffusion
run's index run) and names the missing one otherwise. ``generate``, ``edit``, ``evaluate`` and the
benchmarks all use it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn


@dataclass
class Synthesizer:
    """A trained diffusion run with its video model and retrieval index."""

    diffusion: Any  # physdiff.inference.load.LoadedDiffusion
    video: nn.Module | None
    video_cfg: Any
    index: Any  # physdiff.retrieval.RetrievalIndex (None for the "video" variant)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def cfg(self) -> Any:
        return self.diffusion.cfg

    @property
    def variant(self) -> str:
        return self.diffusion.variant

    @property
    def num_timesteps(self) -> int:
        return int(self.diffusion.model.schedule.num_timesteps)

    @classmethod
    def from_run(cls, diffusion_run_dir: str | Path, device: str | torch.device = "cpu", *, with_video: bool = True,
                 index_dir: str | Path | None = None) -> "Synthesizer":
        """Load a finished diffusion run, its index run (default: the one its identity names) and its video model."""
        from physdiff.inference.index import index_dir_for, load_run_index
        from physdiff.inference.load import load_diffusion, load_video_encoder, upstream_run

        loaded = load_diffusion(diffusion_run_dir, device)
        index = None
        if loaded.variant != "video":
            where = Path(index_dir) if index_dir is not None else index_dir_for(loaded.cfg)
            index = load_run_index(where, loaded.run_dir, device=str(device))
        video, vcfg = (None, None)
        if with_video:
            video, vcfg = load_video_encoder(upstream_run(loaded.cfg, "video"), device)
        return cls(loaded, video, vcfg, index, torch.device(device))

    # ---------------------------------------------------------------- steps
    @torch.no_grad()
    def encode_frames(self, frames: Tensor) -> tuple[Tensor, Tensor]:
        """frames (B, T, 3, S, S) uint8 -> (nu (B, D_nu), logits (B, K)) with the trained video model."""
        from physdiff.data.augment import resize_clips
        from physdiff.data.reader import frames_to_float

        if self.video is None:
            raise RuntimeError("this synthesizer was loaded without its video model")
        x = resize_clips(frames_to_float(frames.to(self.device)), self.video_cfg.video.frame_size)  # (B, T, 3, S', S')
        nu, logits = self.video(x)  # (B, D_nu), (B, K)
        return nu.float(), logits.float()

    @torch.no_grad()
    def conditions(self, nu: Tensor, logits: Tensor | None = None) -> tuple[Tensor, list[str | None], Tensor]:
        """c (B, C) from nu: retrieve the latent of the nearest training nu (none for "video").

        Returns (c, retrieved training clip keys, retrieval distances (B,)); the visual input of the
        condition is nu, or the logits when the run was trained with ``diffusion.visual_input=logits``.
        """
        from physdiff.inference.conditioning import assemble_condition
        from physdiff.retrieval import retrieve

        nu = nu.to(self.device).float()  # (B, D_nu)
        visual = nu
        if self.cfg.diffusion.visual_input == "logits":
            if logits is None:
                raise ValueError("this diffusion run conditions on the video logits; pass them")
            visual = logits.to(self.device).float()
        if self.index is None:
            return assemble_condition(self.diffusion, visual, None), [None] * nu.shape[0], torch.full((nu.shape[0],), math.nan)
        e = self.cfg.eval
        vals, dist, idx = retrieve(self.index, nu, k=1, chunk_size=e.retrieval_chunk_size,
                                   query_batch=e.retrieval_query_batch, backend=e.retrieval_backend)  # (B, 1, L), (B, 1), (B, 1)
        keys = [self.index.clip_keys[i] for i in idx[:, 0].tolist()]
        return assemble_condition(self.diffusion, visual, vals[:, 0]), keys, dist[:, 0].cpu()

    def sample(self, cond: Tensor, opts: Any, *, progress: bool = False, **overrides: Any) -> Tensor:
        """Spectrograms x_0 (B, 1, F, N) for conditions (B, C): :func:`physdiff.inference.sampling.sample_spectrograms`."""
        from physdiff.inference.sampling import sample_spectrograms

        return sample_spectrograms(self.diffusion, cond, opts, progress=progress, **overrides)

    def training_modes(self, keys: list[str]) -> Tensor:
        """The shard modes (B, 3, D) of training clips ``keys`` (read once from the training shards, then cached)."""
        if not hasattr(self, "_modes"):
            from physdiff import identity
            from physdiff.data.reader import make_loader

            table: dict[str, Tensor] = {}
            for b in make_loader(identity.shards_dir(self.cfg), "train", batch_size=256, mode="eval"):
                table.update({str(k): torch.as_tensor(m) for k, m in zip(b["key"], b["modes"])})
            self._modes = table
        return torch.stack([self._modes[k] for k in keys]).float()

    def to_audio(self, spec: Tensor, keys: list[str | None] | None = None, opts: Any = None) -> Tensor:
        """(B, 1, F, N) -> denormalise -> Griffin-Lim -> peak-normalised audio (B, T) at ``audio.sample_rate``.

        With ``sampling.phase_init=physics`` and the retrieved training clip of every row (``keys``), Griffin-Lim
        starts from the phase of those clips' modal resynthesis (physdiff.physics.phase); else at random.
        """
        from physdiff.physics import spectrogram_to_audio

        opts = opts if opts is not None else self.cfg.sampling
        if opts.phase_init == "physics" and keys and all(k is not None for k in keys):
            from physdiff.physics.phase import modal_phase

            phase = modal_phase(self.training_modes(list(keys)), self.cfg.audio)  # (B, F, N)
            return spectrogram_to_audio(spec, self.cfg.audio, init_phase=phase)
        return spectrogram_to_audio(spec, self.cfg.audio)
