"""The ``convnet`` and ``tts`` stages (paper Table 1): regress the spectrogram from the video's per-frame features.

The paper's two non-diffusion comparison systems, trained on the engine like every other stage::

    physdiff launch --stage convnet --local --preset tiny     # ConvNet-based: features -> U-Net -> spectrogram
    physdiff launch --stage tts --local --preset tiny         # Transformer-based (TTS-style encoder-decoder)
    physdiff launch --stage convnet --gpus 8                  # SLURM, 1 node x 8 GPUs

- data: the clips' audio from the shards and the video export's per-frame features ``nu_frames``
  (N, T, D) joined by key (``batch["video/nu_frames"]``); no frames are decoded. A video export without
  ``nu_frames`` (made before it existed) falls back to ``nu`` (N, D), repeated over time (no timing cue);
- target x_0: the diffusion model's, the normalised log-magnitude spectrogram (B, 1, F, N) in [-1, 1];
- model: :class:`physdiff.models.convnet_regressor.ConvNetRegressor` (section ``convnet``) or
  :class:`physdiff.models.tts_transformer.TTSTransformer` (section ``tts``: ``decoder=parallel`` by default,
  ``autoregressive`` teacher-forced in training and generated frame by frame);
- loss: L1 (``<section>.loss``) between the regression and x_0;
- evaluation on the validation split: L1 and squared error of the *generated* spectrograms (the TTS
  decoder runs freely, as at test time), beside the L1 of always answering the validation split's own
  mean spectrogram (a trivial predictor that even sees the answers' average), plus figures and WAVs;
  the exported weights are the epoch with the lowest validation L1;
- export: the weights and the manifest (feature width, video frames, the video run it read).
  :func:`load_regressor` rebuilds the model; the evaluation rows ``convnet`` / ``tts`` predict the test clips
  from their exported features (:mod:`physdiff.stages.rows`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from physdiff.data.layout import VALIDATION
from physdiff.errors import DataError
from physdiff.physics.spectral import spectrogram_target
from physdiff.stages.base import ShardRecipe, upstream_tables
from physdiff.training.recipe import EvalContext

EVAL_SPLIT = VALIDATION  # every selection on the validation split; test is only for the report


def video_features(arrays: Mapping[str, Any], device: torch.device | str = "cpu") -> dict[str, Tensor]:
    """The regressors' input mapping from video-export arrays: ``nu_frames`` (B, T, D) when exported, else ``nu``.

    ``arrays``: a reader batch (``video/nu_frames``, ``video/nu``) or a side-table lookup (``nu_frames``, ``nu``);
    float16 storage is read as float32.
    """
    for prefix in ("video/", ""):
        if f"{prefix}nu_frames" in arrays:
            return {"nu_frames": torch.as_tensor(arrays[f"{prefix}nu_frames"]).to(device=device, dtype=torch.float32)}
    for prefix in ("video/", ""):
        if f"{prefix}nu" in arrays:
            return {"nu": torch.as_tensor(arrays[f"{prefix}nu"]).to(device=device, dtype=torch.float32)}
    raise DataError(f"no video features (nu_frames or nu) among {sorted(arrays)}")


class RegressionRecipe(ShardRecipe):
    """What the two regressors share; subclasses name the stage (= config section) and build the model."""

    name = ""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, Any] = {}  # split -> the video export's SideTable
        self.nu_dim = 0
        self.video_frames = 0
        self.feature = "nu_frames"
        self.video_run = ""

    # ------------------------------------------------------------------ data
    def setup(self, cfg: Any, rank: int, world_size: int) -> None:
        from physdiff.data.layout import SPLITS
        from physdiff.data.reader import load_manifest
        from physdiff.data.sidetable import read_side_table

        super().setup(cfg, rank, world_size)
        paths = upstream_tables(cfg, "video")  # DataError naming the video run when it is missing
        self.tables = {}
        for split in SPLITS:
            try:
                load_manifest(self.shard_root, split)
            except DataError:
                continue
            if split not in paths:
                raise DataError(f"the video export read by the {self.name} stage has no '{split}' split; it was "
                                f"made from other shards than {self.shard_root}")
            self.tables[split] = read_side_table(paths[split])
        if "train" not in self.tables:
            raise DataError(f"no training split under {self.shard_root}")
        train = self.tables["train"]
        self.video_run = Path(train.path).parent.parent.name
        if "nu" not in train.arrays:
            raise DataError(f"video export {train.path} has no 'nu' array (has {sorted(train.arrays)})")
        self.nu_dim = int(train.arrays["nu"].shape[1])
        if "nu_frames" in train.arrays:
            self.feature, self.video_frames = "nu_frames", int(train.arrays["nu_frames"].shape[1])
        else:  # an export made before nu_frames existed: nu repeated over time (no timing cue)
            self.feature, self.video_frames = "nu", cfg.video.num_frames
            if rank == 0:
                print(f"[{self.name}] {train.path} has no per-frame features: regressing from nu repeated over "
                      f"{self.video_frames} frames (rerun the video stage for nu_frames)", flush=True)

    def side_tables(self, split: str) -> dict[str, Any]:
        if split not in self.tables:
            raise DataError(f"no '{split}' split under {self.shard_root}")
        return {"video": self.tables[split]}

    def selection(self, cfg: Any) -> tuple[str, str]:
        """The L1 of the generated spectrograms on the validation split picks the exported weights."""
        return "val/l1", "min"

    # ------------------------------------------------------------------ model and loss
    def build_model(self, cfg: Any) -> nn.Module:  # pragma: no cover - subclasses
        raise NotImplementedError

    def forward_train(self, model: nn.Module, feats: Mapping[str, Tensor], x0: Tensor) -> Tensor:
        """The training prediction (B, 1, F, N) through the (possibly DDP-wrapped) model's forward."""
        return model(feats)

    def inputs(self, batch: Mapping[str, Any], cfg: Any, device: torch.device) -> tuple[Tensor, dict[str, Tensor]]:
        """(x_0 (B, 1, F, N), the model's input mapping) of a reader batch, on ``device``."""
        audio = torch.as_tensor(batch["audio"], dtype=torch.float32).to(device)  # (B, T)
        return spectrogram_target(audio, cfg.audio), video_features(batch, device)

    def loss(self, model: nn.Module, batch: dict[str, Any], cfg: Any) -> tuple[Tensor, dict[str, float]]:
        from physdiff.models.convnet_regressor import regression_loss

        x0, feats = self.inputs(batch, cfg, next(model.parameters()).device)
        pred = self.forward_train(model, feats, x0)  # (B, 1, F, N)
        return regression_loss(pred, x0, getattr(cfg, self.name).loss), {}

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, model: nn.Module, cfg: Any, ctx: EvalContext) -> dict[str, float]:
        """Validation L1 / squared error of the generated spectrograms, the mean-spectrogram reference, media."""
        from physdiff.stages.diffusion import write_sample_media

        if EVAL_SPLIT not in self.tables:
            return {}
        device = next(model.parameters()).device
        reals, gens, audios, keys = [], [], [], []
        for bi, batch in enumerate(self.loader(cfg, EVAL_SPLIT, "eval")):
            if cfg.train.eval_batches and bi >= cfg.train.eval_batches:
                break
            x0, feats = self.inputs(batch, cfg, device)
            reals.append(x0.float().cpu())
            gens.append(model.predict(feats).float().cpu())  # (B, 1, F, N): free-running, as at test time
            audios.append(torch.as_tensor(batch["audio"], dtype=torch.float32))
            keys += [str(k) for k in batch["key"]]
        if not keys:
            return {}
        real, gen = torch.cat(reals), torch.cat(gens)  # (V, 1, F, N) each
        mean = real.mean(0, keepdim=True)  # (1, 1, F, N): the validation split's own mean spectrogram
        out = {"val/l1": float((gen - real).abs().mean()), "val/spec_mse": float((gen - real).square().mean()),
               "val/l1_mean_spectrogram": float((mean - real).abs().mean()), "val/clips": float(len(keys))}
        k = min(ctx.num_examples, len(keys))
        if k:
            write_sample_media(ctx.media_dir, keys[:k], real[:k], gen[:k], torch.cat(audios)[:k], cfg,
                               gen_title=f"{self.name} regression")
        return out

    # ------------------------------------------------------------------ export
    def export(self, model: nn.Module, cfg: Any, out: Any) -> None:
        super().export(model, cfg, out)
        out.manifest.update(nu_dim=self.nu_dim, video_frames=self.video_frames, feature=self.feature,
                            video_run=self.video_run, spec_shape=[cfg.audio.num_bins, cfg.audio.num_frames])


class ConvNetRecipe(RegressionRecipe):
    """Table 1's ConvNet-based system: per-frame features, upsampled in time, through a U-Net (L1)."""

    name = "convnet"

    def build_model(self, cfg: Any) -> nn.Module:
        from physdiff.models.convnet_regressor import ConvNetRegressor

        return ConvNetRegressor.from_config(cfg.convnet, cfg.audio, nu_dim=self.nu_dim, video_frames=self.video_frames)


class TTSRecipe(RegressionRecipe):
    """Table 1's Transformer-based system: a TTS-style encoder over the frames, a decoder over spectrogram frames."""

    name = "tts"

    def build_model(self, cfg: Any) -> nn.Module:
        from physdiff.models.tts_transformer import TTSTransformer

        return TTSTransformer.from_config(cfg.tts, cfg.audio, nu_dim=self.nu_dim, video_frames=self.video_frames)

    def forward_train(self, model: nn.Module, feats: Mapping[str, Tensor], x0: Tensor) -> Tensor:
        return model(feats, x0)  # the autoregressive decoder is teacher-forced; the parallel one ignores x0


RECIPES = {"convnet": ConvNetRecipe, "tts": TTSRecipe}


def load_regressor(run_dir: str | Path, stage: str, device: str | torch.device = "cpu") -> tuple[nn.Module, Any, dict]:
    """(model in eval mode, the run's config, its export manifest) of a finished ``convnet`` / ``tts`` run."""
    from physdiff.artifacts import finished, read_export
    from physdiff.inference.load import load_run_config

    if stage not in RECIPES:
        raise DataError(f"no regression stage {stage!r}; stages: {', '.join(RECIPES)}")
    run_dir = Path(run_dir).expanduser().resolve()
    finished(run_dir, stage)
    cfg = load_run_config(run_dir)
    ex = read_export(run_dir, stage)
    recipe = RECIPES[stage]()
    recipe.nu_dim, recipe.video_frames = int(ex.manifest["nu_dim"]), int(ex.manifest["video_frames"])
    model = recipe.build_model(cfg)
    missing, unexpected = model.load_state_dict(ex.weights(), strict=False)
    if missing or unexpected:
        raise DataError(f"{ex.file('model')} does not fit the {stage} model of {run_dir / 'config.json'} "
                        f"(missing {list(missing)[:3]}, unexpected {list(unexpected)[:3]})")
    return model.to(device).eval(), cfg, dict(ex.manifest)
