"""The diffusion stage (paper Secs. 3.3-3.4): learn eps_theta(x_t, t, mu, nu) over impact spectrograms.

Recipe for the engine (:mod:`physdiff.training.trainer`); run it with the launcher::

    python cluster/launch.py --stage diffusion --local --preset tiny          # this process (GPU or CPU)
    python cluster/launch.py --stage diffusion --cpu --procs 2 --preset debug # 2 gloo processes (torchrun)
    python cluster/launch.py --stage diffusion --gpus 8                       # SLURM, 1 node x 8 GPUs
    python cluster/launch.py --stage diffusion --gpus 8 diffusion.variant=video   # a Table 1 baseline

- data: audio + modes (f, p, lambda) from the shards, (w, gamma) from the prior stage's export and
  (nu, logits) from the video stage's export, joined by key (side tables); no frames are read;
- target x_0: the normalised log-magnitude spectrogram of the peak-normalised clip, (B, 1, F, N)
  (1025 x 44 in ``paper``, 257 x 32 in ``tiny``);
- model: :class:`physdiff.models.denoiser.PhysicsDiffusion`, conditioned per ``diffusion.variant``
  ("ours" = mu + nu, "video" = nu, "video_label" = nu + class, "video_spec" = nu + spectrogram latent,
  "video_mfcc" = nu + MFCC latent of the recording);
- loss: eq. 8, L1 on the noise, t ~ U{0..T-1} over the cosine schedule, with the condition replaced
  by the learned null condition with probability ``diffusion.cond_dropout`` (classifier-free guidance);
- evaluation (rank 0, the validation split): the denoising loss on a fixed grid of timesteps with a
  fixed per-clip noise (comparable across evaluations and runs), with the condition and with the null
  condition (their difference is what the condition is worth), and a few DDIM samples with the clips'
  ground-truth mu and nu written as figures (real | generated) and Griffin-Lim WAVs for MLflow;
- export (:mod:`physdiff.artifacts`): the weights and, per split, the clip latents the index stage
  retrieves (``export/diffusion-<split>.safetensors``: ``mu`` for "ours", ``spec_latent`` for
  "video_spec", ``label_embedding`` for "video_label", ``mfcc_latent`` for "video_mfcc"). :func:`physdiff.inference.load.load_diffusion`
  rebuilds the model from the run folder.

Upstream runs: ``diffusion.prior_run`` / ``diffusion.video_run`` name their run folders; empty means
the prior / video run of this same config (:func:`physdiff.inference.load.upstream_run`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from physdiff.data.layout import VALIDATION
from physdiff.errors import DataError
from physdiff.inference.conditioning import LATENT_NAME, condition_inputs, condition_latent
from physdiff.physics.spectral import spectrogram_target, spectrogram_to_audio
from physdiff.stages.base import ShardRecipe, check_export_count, upstream_tables
from physdiff.training.recipe import EvalContext

EVAL_SPLIT = VALIDATION  # every selection on the validation split; test is only for the report


# ----------------------------------------------------------------------------- the recipe


class DiffusionRecipe(ShardRecipe):
    name = "diffusion"  # identity: the prior and video sections too (the exports it reads)

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, dict[str, Any]] = {}  # split -> {"prior": SideTable, "video": SideTable}
        self.nu_dim = 0
        self.sources: dict[str, Any] = {}

    # ------------------------------------------------------------------ data
    def setup(self, cfg: Any, rank: int, world_size: int) -> None:
        from physdiff.data.layout import SPLITS
        from physdiff.data.reader import load_manifest
        from physdiff.data.sidetable import read_side_table

        super().setup(cfg, rank, world_size)  # shard root, training-split size, clip format
        needed = ["video"] + (["prior"] if cfg.diffusion.variant == "ours" else [])
        exports = {stage: upstream_tables(cfg, stage) for stage in needed}
        self.sources = {stage: {s: str(p) for s, p in e.items()} for stage, e in exports.items()}
        self.tables = {}
        for split in SPLITS:
            try:
                load_manifest(self.shard_root, split)
            except DataError:
                continue  # a split without shards (e.g. no test clips) needs no side tables
            self.tables[split] = {}
            for stage, paths in exports.items():
                if split not in paths:
                    raise DataError(f"the {stage} export read by this diffusion run has no '{split}' split; "
                                    f"it was made from other shards than {self.shard_root}")
                self.tables[split][stage] = read_side_table(paths[split])
        if "train" not in self.tables:
            raise DataError(f"no training split under {self.shard_root}")
        video = self.tables["train"]["video"]
        key = "nu" if cfg.diffusion.visual_input == "features" else "logits"
        if key not in video.arrays:
            raise DataError(f"video export {video.path} has no '{key}' array (diffusion.visual_input="
                            f"{cfg.diffusion.visual_input}); arrays: {sorted(video.arrays)}")
        self.nu_dim = int(video.arrays["nu"].shape[1]) if "nu" in video.arrays else 0
        if "prior" in self.tables["train"]:
            prior = self.tables["train"]["prior"]
            for col in ("weight", "gamma"):
                if col not in prior.arrays or prior.arrays[col].shape[1:] != (cfg.prior.residual_dims,):
                    raise DataError(f"prior export {prior.path}: expected '{col}' of shape (N, "
                                    f"{cfg.prior.residual_dims}) (prior.residual_dims), got "
                                    f"{ {k: v.shape for k, v in prior.arrays.items()} }")

    def side_tables(self, split: str) -> dict[str, Any]:
        """The prior and video exports of ``split`` (read in ``setup``)."""
        if split not in self.tables:
            raise DataError(f"no '{split}' split under {self.shard_root}")
        return self.tables[split]

    # ------------------------------------------------------------------ model and loss
    def build_model(self, cfg: Any) -> nn.Module:
        from physdiff.models.denoiser import PhysicsDiffusion

        model = PhysicsDiffusion.from_config(cfg, nu_dim=self.nu_dim)
        if cfg.diffusion.compile:
            model.unet.compile()  # in place: parameter names (checkpoints) stay those of the eager module
        return model

    def inputs(self, batch: Mapping[str, Any], cfg: Any, device: torch.device) -> tuple[Tensor, dict[str, Tensor]]:
        """(x_0 (B, 1, F, N), conditioner inputs) of a reader batch, on ``device``."""
        audio = torch.as_tensor(batch["audio"], dtype=torch.float32).to(device)  # (B, T)
        x0 = spectrogram_target(audio, cfg.audio)  # (B, 1, F, N)
        return x0, condition_inputs(batch, device, x0)

    def loss(self, model: nn.Module, batch: dict[str, Any], cfg: Any) -> tuple[Tensor, dict[str, float]]:
        x0, inp = self.inputs(batch, cfg, next(model.parameters()).device)
        return model(x0, inp), {}  # eq. 8 with conditioning dropout (PhysicsDiffusion.forward)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, model: nn.Module, cfg: Any, ctx: EvalContext) -> dict[str, float]:
        """Held-out denoising loss (conditioned and null) on a fixed (t, noise) grid, plus sampled media."""
        if EVAL_SPLIT not in self.tables:
            return {}
        device = next(model.parameters()).device
        d = cfg.diffusion
        grid = eval_timesteps(model.schedule.num_timesteps, d.eval_t_grid)  # (K,)
        tot_c = torch.zeros(len(grid), dtype=torch.float64)
        tot_u = torch.zeros(len(grid), dtype=torch.float64)
        n = 0
        shown: list[tuple[str, Tensor, dict[str, Tensor], Tensor]] = []
        for bi, batch in enumerate(self.loader(cfg, EVAL_SPLIT, "eval")):
            if cfg.train.eval_batches and bi >= cfg.train.eval_batches:
                break
            x0, inp = self.inputs(batch, cfg, device)
            lc, lu = heldout_denoising_loss(model, x0, inp, list(batch["key"]), grid, d.eval_noise_seed)  # (B, K) x2
            tot_c += lc.sum(0).double().cpu()
            tot_u += lu.sum(0).double().cpu()
            n += x0.shape[0]
            for j in range(min(ctx.num_examples - len(shown), x0.shape[0])):
                one = {k: v[j : j + 1] for k, v in inp.items()}
                audio = torch.as_tensor(batch["audio"][j : j + 1], dtype=torch.float32)
                shown.append((str(batch["key"][j]), x0[j : j + 1], one, audio))
        if n == 0:
            return {}
        out = {"val/denoise_loss": float(tot_c.sum() / (n * len(grid))),
               "val/denoise_loss_null": float(tot_u.sum() / (n * len(grid))), "val/clips": float(n)}
        out["val/cond_gain"] = out["val/denoise_loss_null"] - out["val/denoise_loss"]
        for k, t in enumerate(grid.tolist()):
            out[f"val/denoise_loss_t{t:04d}"] = float(tot_c[k] / n)
        if shown:
            out.update(self._samples(model, cfg, ctx, shown))
        return out

    def _samples(self, model: nn.Module, cfg: Any, ctx: EvalContext,
                 shown: list[tuple[str, Tensor, dict[str, Tensor], Tensor]]) -> dict[str, float]:
        """DDIM samples with the clips' ground-truth condition -> figures + WAVs; their spectrogram MSE."""
        keys = [s[0] for s in shown]
        x0 = torch.cat([s[1] for s in shown])  # (S, 1, F, N)
        inp = {k: torch.cat([s[2][k] for s in shown]) for k in shown[0][2]}
        from physdiff.inference.sampling import sample_spectrograms

        g = torch.Generator(device="cpu").manual_seed(cfg.diffusion.eval_noise_seed)
        cond = model.conditioner.encode(inp)  # (S, C)
        gen = sample_spectrograms(model, cond, cfg.sampling, generator=g, sampler="ddim",
                                  steps=cfg.diffusion.eval_sample_steps, eta=0.0, guidance_scale=1.0)  # (S, 1, F, N)
        write_sample_media(ctx.media_dir, keys, x0, gen, torch.cat([s[3] for s in shown]), cfg)
        return {"val/sample_mse": float(((gen.float() - x0.float()) ** 2).mean())}

    # ------------------------------------------------------------------ export
    def export(self, model: nn.Module, cfg: Any, out: Any) -> None:
        """The per-clip latents of every split (what the index retrieves), beside the engine's weights."""
        super().export(model, cfg, out)
        from physdiff.data.reader import load_manifest

        device = next(model.parameters()).device
        latent = LATENT_NAME[cfg.diffusion.variant]
        out.manifest.update(
            variant=cfg.diffusion.variant, nu_dim=self.nu_dim, visual_input=cfg.diffusion.visual_input,
            cond_dim=int(model.conditioner.cond_dim), spec_shape=list(model.spec_shape),
            timesteps=int(model.schedule.num_timesteps), latent=latent,
            upstream={stage: {s: Path(p).parent.parent.name for s, p in paths.items()} for stage, paths in self.sources.items()},
        )
        if latent is None:
            return
        for split in self.tables:
            keys: list[str] = []
            parts: list[Tensor] = []
            loader = self.loader(cfg, split, "eval")
            with torch.no_grad():
                for batch in loader:
                    x0, inp = self.inputs(batch, cfg, device)
                    parts.append(condition_latent(model, inp).float().cpu())  # (B, L)
                    keys += [str(k) for k in batch["key"]]
            check_export_count("diffusion", split, keys, load_manifest(self.shard_root, split), self.shard_root, cfg, loader)
            arr = torch.cat(parts) if parts else torch.zeros(0, 1)  # (N, L)
            out.table(split, keys, {latent: arr}, {"variant": cfg.diffusion.variant, "latent": latent},
                      skipped=list(loader.skipped))


# ----------------------------------------------------------------------------- held-out loss


def eval_timesteps(num_timesteps: int, points: int) -> Tensor:
    """``points`` evenly spaced timesteps over [0, T-1] (both ends when points > 1). (K,) long."""
    if points == 1:
        return torch.tensor([num_timesteps // 2])
    return torch.linspace(0, num_timesteps - 1, points, dtype=torch.float64).round().long().unique()


def clip_noise(key: str, seed: int, count: int, shape: tuple[int, ...]) -> Tensor:
    """A fixed noise draw per (clip key, seed): (count, *shape), independent of batching and order."""
    s = int.from_bytes(hashlib.sha256(f"{seed}/{key}".encode()).digest()[:8], "big") & ((1 << 63) - 1)
    return torch.randn((count, *shape), generator=torch.Generator(device="cpu").manual_seed(s))


@torch.no_grad()
def heldout_denoising_loss(model: nn.Module, x0: Tensor, inputs: Mapping[str, Tensor], keys: list[str],
                           grid: Tensor, seed: int) -> tuple[Tensor, Tensor]:
    """Eq. 8 per clip at each timestep of ``grid`` with fixed per-clip noise: (conditioned, null), (B, K) each."""
    from physdiff.diffusion.losses import noise_prediction_loss

    b, k = x0.shape[0], grid.shape[0]
    noise = torch.stack([clip_noise(key, seed, k, tuple(x0.shape[1:])) for key in keys]).to(x0.device, x0.dtype)  # (B, K, 1, F, N)
    cond = model.conditioner.encode(inputs)  # (B, C)
    null = model.conditioner.null_condition(b).to(cond.dtype)  # (B, C)
    lc, lu = torch.zeros(b, k), torch.zeros(b, k)
    for i, t in enumerate(grid.tolist()):
        tt = torch.full((b,), t, device=x0.device, dtype=torch.long)  # (B,)
        for c, dest in ((cond, lc), (null, lu)):
            dest[:, i] = noise_prediction_loss(model.predict, x0, c, model.schedule, t=tt, noise=noise[:, i],
                                               kind=model.loss_kind, reduction="none",
                                               prediction=model.prediction).float().cpu()  # (B,)
    return lc, lu


# ----------------------------------------------------------------------------- media


def write_sample_media(media_dir: Path, keys: list[str], real: Tensor, gen: Tensor, audio: Tensor, cfg: Any,
                       gen_title: str = "generated (GT condition)") -> None:
    """Per clip: ``<key>.png`` (real | generated normalised log-magnitude) and WAVs of the recording,
    Griffin-Lim of the real spectrogram, and Griffin-Lim of the generated one (``gen_title`` labels its panel)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import soundfile as sf

    from physdiff.physics import peak_normalize

    media_dir.mkdir(parents=True, exist_ok=True)
    wav_real_gl = spectrogram_to_audio(real, cfg.audio)  # (S, T)
    wav_gen = spectrogram_to_audio(gen, cfg.audio)  # (S, T)
    rec = peak_normalize(audio.float().cpu())  # (S, T)
    for j, key in enumerate(keys):
        fig, axes = plt.subplots(1, 2, figsize=(7, 3), sharey=True)
        for ax, x, title in zip(axes, (real[j, 0], gen[j, 0]), ("real", gen_title)):
            ax.imshow(x.detach().float().cpu().numpy(), origin="lower", aspect="auto", cmap="magma", vmin=-1, vmax=1)
            ax.set_title(title)
            ax.set_xlabel("frame")
        axes[0].set_ylabel("bin")
        fig.suptitle(key)
        fig.tight_layout()
        fig.savefig(media_dir / f"{key}.png", dpi=80)
        plt.close(fig)
        for name, wav in (("recording", rec[j]), ("real-gl", wav_real_gl[j]), ("generated", wav_gen[j])):
            sf.write(media_dir / f"{key}-{name}.wav", (0.99 * wav).numpy(), cfg.audio.sample_rate)
