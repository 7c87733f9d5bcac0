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
  ("ours" = mu + nu, "video" = nu, "video_label" = nu + class, "video_spec" = nu + spectrogram latent);
- loss: eq. 8, L1 on the noise, t ~ U{0..T-1} over the cosine schedule, with the condition replaced
  by the learned null condition with probability ``diffusion.cond_dropout`` (classifier-free guidance);
- evaluation (rank 0, held-out ``test`` split): the denoising loss on a fixed grid of timesteps with a
  fixed per-clip noise (comparable across evaluations and runs), with the condition and with the null
  condition (their difference is what the condition is worth), and a few DDIM samples with the clips'
  ground-truth mu and nu written as figures (real | generated) and Griffin-Lim WAVs for MLflow;
- export: the trained model (``export/model.safetensors`` + ``export/manifest.json``) and, per split,
  the clip latents the index stage retrieves (``export/diffusion-<split>.safetensors``: ``mu`` for
  "ours", ``spec_latent`` for "video_spec"). :func:`load_diffusion` rebuilds the model from a run.

Upstream runs: ``diffusion.prior_run`` / ``diffusion.video_run`` name their run folders; empty means
the prior / video run of this same config (``physdiff.stages.stage_run_dir``).
"""

from __future__ import annotations

import hashlib
import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from physdiff.errors import DataError
from physdiff.physics.spectral import spectrogram_target, spectrogram_to_audio
from physdiff.stages.base import ShardRecipe
from physdiff.training.recipe import EvalContext

EVAL_SPLIT = "test"
EXPORT_FORMAT = "physdiff-diffusion-export/1"
# The non-visual latent each variant adds to the condition (what the index stage stores per training clip).
LATENT_NAME = {"ours": "mu", "video_spec": "spec_latent", "video_label": None, "video": None}


# ----------------------------------------------------------------------------- upstream exports


def _read_export_manifest(run_dir: Path, stage: str) -> dict[str, Path]:
    """{split: side table} from ``<run>/export/manifest.json`` (the prior stage's export format)."""
    man_path = run_dir / "export" / "manifest.json"
    if not man_path.exists():
        raise DataError(f"no {stage} export in {run_dir}: train the {stage} stage first "
                        f"(cluster/launch.py --stage {stage}) or set diffusion.{stage}_run")
    try:
        man = json.loads(man_path.read_text())
        return {split: run_dir / "export" / v["path"] for split, v in man["splits"].items()}
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
        raise DataError(f"unreadable {stage} export manifest {man_path}: {e!r}") from e


def upstream_run_dir(cfg: Any, stage: str) -> Path:
    """The run folder of the ``prior`` or ``video`` stage this diffusion run reads."""
    from physdiff.stages import TRAINING_STAGES, stage_run_dir

    override = getattr(cfg.diffusion, f"{stage}_run")
    if override:
        return Path(override).expanduser().resolve()
    if stage not in TRAINING_STAGES:
        raise DataError(f"the {stage} stage is not registered and diffusion.{stage}_run is empty: "
                        f"point diffusion.{stage}_run at a {stage} run folder")
    return stage_run_dir(cfg, stage)


def upstream_exports(cfg: Any, stage: str) -> dict[str, Path]:
    """{split: side table path} of the upstream stage's export (its own ``export_paths`` when it has one)."""
    from physdiff.stages import TRAINING_STAGES

    run = upstream_run_dir(cfg, stage)
    target = TRAINING_STAGES.get(stage)
    if target:
        reader = getattr(importlib.import_module(target.partition(":")[0]), "export_paths", None)
        if reader is not None:
            return {split: Path(p) for split, p in reader(run).items()}
    return _read_export_manifest(run, stage)


# ----------------------------------------------------------------------------- batch -> model inputs




def condition_inputs(batch: Mapping[str, Any], device: torch.device | str, x0: Tensor | None = None) -> dict[str, Tensor]:
    """The conditioner's input mapping from a reader batch (keys of :mod:`physdiff.models.conditioning`).

    modes (B, 3, D) -> freq, power, decay; ``prior/weight``, ``prior/gamma`` (B, M) -> res_weight, res_decay;
    ``video/nu`` (B, D_nu) -> nu; ``video/logits`` (B, 17) -> logits; material (B,) -> label; x0 -> spec.
    Only the keys present in the batch are filled; the conditioner names any it needs and lacks.
    """
    def t(v: Any, dtype: torch.dtype = torch.float32) -> Tensor:
        return torch.as_tensor(v).to(device=device, dtype=dtype)

    out: dict[str, Tensor] = {}
    if "modes" in batch:
        modes = t(batch["modes"])  # (B, 3, D)
        out.update(freq=modes[:, 0], power=modes[:, 1], decay=modes[:, 2])
    for src, dst in (("prior/weight", "res_weight"), ("prior/gamma", "res_decay"), ("video/nu", "nu"),
                     ("video/logits", "logits")):
        if src in batch:
            out[dst] = t(batch[src])
    if "material" in batch:
        out["label"] = t(batch["material"], torch.long)  # (B,)
    if x0 is not None:
        out["spec"] = x0
    return out


# ----------------------------------------------------------------------------- the recipe


class DiffusionRecipe(ShardRecipe):
    name = "diffusion"
    # The exports it reads depend on the prior and video sections too: they are part of this run's identity.
    sections = ("seed", "audio", "physics", "world", "shards", "loader", "train", "prior", "video", "diffusion")

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
        exports = {stage: upstream_exports(cfg, stage) for stage in needed}
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
                    raise DataError(f"the {stage} export {upstream_run_dir(cfg, stage)} has no '{split}' split; "
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
        g = torch.Generator(device="cpu").manual_seed(cfg.diffusion.eval_noise_seed)
        gen = model.sample(inp, generator=g, sampler="ddim", steps=cfg.diffusion.eval_sample_steps, eta=0.0)  # (S, 1, F, N)
        write_sample_media(ctx.media_dir, keys, x0, gen, torch.cat([s[3] for s in shown]), cfg)
        return {"val/sample_mse": float(((gen.float() - x0.float()) ** 2).mean())}

    # ------------------------------------------------------------------ export
    def export(self, model: nn.Module, cfg: Any, run_dir: Path) -> dict[str, Any]:
        """The trained model (safetensors + manifest) and the per-clip latents of every split."""
        from safetensors.torch import save_file

        from physdiff.data.reader import load_manifest
        from physdiff.data.sidetable import write_side_table

        model.eval()
        out_dir = run_dir / "export"
        out_dir.mkdir(parents=True, exist_ok=True)
        device = next(model.parameters()).device
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        tmp = out_dir / "model.safetensors.tmp"
        save_file(state, str(tmp), metadata={"format": EXPORT_FORMAT, "variant": cfg.diffusion.variant})
        tmp.replace(out_dir / "model.safetensors")
        latent = LATENT_NAME[cfg.diffusion.variant]
        manifest: dict[str, Any] = {
            "format": EXPORT_FORMAT, "stage": "diffusion", "run_dir": str(run_dir), "variant": cfg.diffusion.variant,
            "model": "model.safetensors", "nu_dim": self.nu_dim, "visual_input": cfg.diffusion.visual_input,
            "cond_dim": int(model.conditioner.cond_dim), "spec_shape": list(model.spec_shape),
            "timesteps": int(model.schedule.num_timesteps), "shard_root": str(self.shard_root),
            "upstream": self.sources, "latent": latent, "splits": {},
        }
        exports: dict[str, Any] = {"model": str(out_dir / "model.safetensors")}
        if latent is not None:
            for split in self.tables:
                keys: list[str] = []
                parts: list[Tensor] = []
                loader = self.loader(cfg, split, "eval")
                with torch.no_grad():
                    for batch in loader:
                        x0, inp = self.inputs(batch, cfg, device)
                        parts.append(condition_latent(model, inp).float().cpu())  # (B, L)
                        keys += [str(k) for k in batch["key"]]
                n_split = int(load_manifest(self.shard_root, split)["num_samples"])
                # With loader.skip_corrupt the clips of skipped shards/samples are missing: recorded, not fatal.
                if len(keys) != n_split and not (cfg.loader.skip_corrupt and loader.skipped):
                    raise DataError(f"diffusion export of split {split}: read {len(keys)} clips but the "
                                    f"manifest of {self.shard_root / split} lists {n_split}")
                arr = torch.cat(parts) if parts else torch.zeros(0, 1)  # (N, L)
                path = write_side_table(out_dir / f"diffusion-{split}.safetensors", keys, {latent: arr},
                                        {"producer": "diffusion", "run_dir": str(run_dir), "split": split,
                                         "variant": cfg.diffusion.variant, "latent": latent})
                manifest["splits"][split] = {"path": path.name, "count": len(keys), "skipped": list(loader.skipped)}
                exports[split] = str(path)
        tmp = out_dir / "manifest.json.tmp"
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
        tmp.replace(out_dir / "manifest.json")
        return exports


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


# ----------------------------------------------------------------------------- latents and conditions


def _unwrap(model: Any) -> nn.Module:
    model = getattr(model, "model", model)  # a LoadedDiffusion
    return getattr(model, "module", model)  # a DDP wrapper


def physics_latents(model: Any, batch: Mapping[str, Any]) -> Tensor:
    """mu (B, latent_dim) of a reader batch (modes + ``prior/weight``, ``prior/gamma``) or of a conditioner
    input mapping (freq, power, decay, res_weight, res_decay): the five-MLP physics encoder on the
    normalised priors (paper Sec. 3.3). ``model``: a PhysicsDiffusion of variant "ours" or a LoadedDiffusion.
    """
    from physdiff.models.physics_encoder import normalize_priors

    m = _unwrap(model)
    cond = m.conditioner
    if cond.physics is None:
        raise ValueError(f"variant '{cond.variant}' has no physics encoder (only 'ours' computes mu)")
    device = next(m.parameters()).device
    inp = batch if "freq" in batch else condition_inputs(batch, device)
    raw = [torch.as_tensor(inp[k]).to(device).float() for k in ("freq", "power", "decay", "res_weight", "res_decay")]
    return cond.physics(normalize_priors(*raw, cond.prior_norm))  # (B, latent)


def condition_latent(model: Any, inputs: Mapping[str, Tensor]) -> Tensor | None:
    """The non-visual part of the condition: mu ("ours"), the spectrogram latent ("video_spec"), the
    label embedding ("video_label"); None for "video". (B, L)."""
    m = _unwrap(model)
    cond = m.conditioner
    if cond.physics is not None:
        return physics_latents(m, inputs)
    if cond.spec is not None:
        return cond.spec(inputs["spec"])  # (B, L)
    if cond.label is not None:
        return cond.label(torch.as_tensor(inputs["label"]).long().to(cond.null.device))  # (B, L)
    return None


def assemble_condition(model: Any, visual: Tensor, latent: Tensor | None) -> Tensor:
    """c (B, cond_dim) from a visual input (nu, or logits when ``visual_input="logits"``) and a latent
    (e.g. a retrieved mu), in the conditioner's order: [mu, nu'] for "ours", [nu', latent] otherwise."""
    m = _unwrap(model)
    cond = m.conditioner
    v = cond.visual(visual.float())  # (B, dv)
    if cond.physics is None and cond.spec is None and cond.label is None:
        if latent is not None:
            raise ValueError("variant 'video' takes no latent")
        return v
    if latent is None:
        raise ValueError(f"variant '{cond.variant}' needs its latent ({LATENT_NAME.get(cond.variant)})")
    return torch.cat([latent.float(), v] if cond.physics is not None else [v, latent.float()], dim=-1)  # (B, C)


@torch.no_grad()
def sample_spectrograms(model: Any, cond: Tensor, *, generator: torch.Generator | None = None,
                        progress: bool = False, **overrides: Any) -> Tensor:
    """x_0 (B, 1, F, N) for ready-made conditions c (B, C), e.g. from :func:`assemble_condition`.

    Sampler settings default to the model's config (``diffusion.sampler``, steps, eta, guidance scale);
    ``overrides`` replace any of them (``sampler="ddim", steps=50, eta=0.0, guidance_scale=2.0``).
    """
    from physdiff.diffusion.samplers import SAMPLERS

    m = _unwrap(model)
    opts = {**m.sampling, **overrides}
    sampler = SAMPLERS[opts.pop("sampler", "ddpm")]
    b = cond.shape[0]
    return sampler(m.eps, (b, 1, *m.spec_shape), m.schedule, cond=cond, null_cond=m.conditioner.null_condition(b),
                   generator=generator, progress=progress, **opts)




# ----------------------------------------------------------------------------- loading a trained model


@dataclass
class LoadedDiffusion:
    """A trained diffusion model with its config: what generation, indexing and evaluation start from."""

    model: nn.Module  # PhysicsDiffusion, eval mode
    cfg: Any
    run_dir: Path
    source: Path  # the weights file it was loaded from
    nu_dim: int

    @property
    def variant(self) -> str:
        return self.cfg.diffusion.variant

    @property
    def physics_encoder(self) -> nn.Module | None:
        return self.model.conditioner.physics


def _nu_dim_from_state(state: Mapping[str, Tensor], cfg: Any) -> int:
    if cfg.diffusion.visual_input == "logits":
        return 0
    w = state.get("conditioner.visual.0.weight")  # LayerNorm(nu_dim)
    if w is None:
        raise DataError("diffusion weights lack conditioner.visual.0.weight: not a physdiff diffusion model")
    return int(w.shape[0])


def load_diffusion(run_dir: str | Path, device: str | torch.device = "cpu", *, checkpoint: bool = False) -> LoadedDiffusion:
    """Rebuild a diffusion run's model (U-Net + conditioner with its physics encoder) from its folder.

    Reads ``<run>/config.json`` and the exported ``export/model.safetensors`` of a finished run; with
    ``checkpoint=True`` (or when there is no export yet) the newest complete training checkpoint.
    """
    from physdiff.config import Config
    from physdiff.models.denoiser import PhysicsDiffusion
    from physdiff.training import checkpoint as ck

    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.json"
    if not cfg_path.exists():
        raise DataError(f"{run_dir} is not a diffusion run folder (no config.json)")
    cfg = Config.from_json(cfg_path)
    exported = run_dir / "export" / "model.safetensors"
    if exported.exists() and not checkpoint:
        from safetensors.torch import load_file

        state, source = load_file(str(exported)), exported
    else:
        last = ck.latest_checkpoint(run_dir / "checkpoints")
        if last is None:
            raise DataError(f"no exported model and no complete checkpoint in {run_dir}: train the diffusion stage")
        state, source = ck.load_state(last.path)["model"], last.path / "state.pt"
    nu_dim = _nu_dim_from_state(state, cfg)
    model = PhysicsDiffusion.from_config(cfg, nu_dim=nu_dim)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise DataError(f"{source} does not fit the model of {cfg_path} (missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.to(device).eval()
    return LoadedDiffusion(model, cfg, run_dir, source, nu_dim)


# ----------------------------------------------------------------------------- media


def write_sample_media(media_dir: Path, keys: list[str], real: Tensor, gen: Tensor, audio: Tensor, cfg: Any) -> None:
    """Per clip: ``<key>.png`` (real | generated normalised log-magnitude) and WAVs of the recording,
    Griffin-Lim of the real spectrogram, and Griffin-Lim of the generated one."""
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
        for ax, x, title in zip(axes, (real[j, 0], gen[j, 0]), ("real", "generated (GT condition)")):
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
