"""The ``mu_regressor`` stage (paper Fig. 5b, fourth bar): predict the physics latent mu from the visual latent nu.

The paper's model *retrieves* mu from the training clip with the nearest nu (Sec. 3.4). This ablation
learns nu -> mu instead (an MLP, :class:`physdiff.models.mu_regressor.MuRegressor`), and its prediction
conditions the same trained "ours" diffusion model::

    physdiff launch --stage mu_regressor --local --preset tiny     # after diffusion (variant ours)
    physdiff launch --stage mu_regressor --gpus 1

- data: no shards are read: nu of every clip from the video export and the target mu from the finished
  "ours" diffusion run's export (``diffusion-<split>.safetensors``, the trained physics encoder's mu),
  joined by key and held in memory (a few MB even at paper scale: 2048 + 256 floats per clip);
- loss: MSE (``mu_regressor.loss``) to the encoder's mu;
- evaluation on the validation split: the MSE, beside the MSE of always answering the training mean
  (what an L2 regressor drifts to when nu says little) and of the mu retrieved by nu (the paper's
  model); the exported weights are the epoch with the lowest validation MSE;
- export: the weights and the predicted mu of every clip of every split (``mu_regressor-<split>``), which the
  evaluation row ``predicted_mu`` puts in place of the retrieved mu (:mod:`physdiff.stages.rows`).

``mu_regressor.diffusion_run`` names the diffusion run whose mu is the target; empty means this config's
"ours" run. The stage refuses another ``diffusion.variant``: only "ours" has a physics latent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import torch
from torch import Tensor, nn

from physdiff import identity
from physdiff.data.layout import VALIDATION
from physdiff.errors import DataError
from physdiff.training.recipe import EvalContext, Recipe

EVAL_SPLIT = VALIDATION


def diffusion_run_of(cfg: Any) -> Path:
    """The "ours" diffusion run whose exported mu the regressor learns (``mu_regressor.diffusion_run`` or this config's)."""
    if cfg.mu_regressor.diffusion_run:
        return Path(cfg.mu_regressor.diffusion_run).expanduser().resolve()
    return identity.artifact_dir(identity.variant_config(cfg, "ours"), "diffusion")


class MuRegressorRecipe(Recipe):
    name = "mu_regressor"

    def __init__(self) -> None:
        self.data: dict[str, tuple[list[str], Tensor, Tensor]] = {}  # split -> (keys, nu (N, D), mu (N, L))
        self.diffusion_run: Path | None = None
        self.video_run = ""

    # ------------------------------------------------------------------ data
    def setup(self, cfg: Any, rank: int, world_size: int) -> None:
        from physdiff.artifacts import finished, read_export
        from physdiff.configlib import ConfigError
        from physdiff.data.sidetable import read_side_table
        from physdiff.inference.load import upstream_run

        if cfg.diffusion.variant != "ours":
            raise ConfigError(f"the mu_regressor stage learns the physics latent of the 'ours' diffusion run; "
                              f"diffusion.variant is {cfg.diffusion.variant!r} (set diffusion.variant=ours)")
        run = diffusion_run_of(cfg)
        finished(run, "diffusion")  # DataError naming the run and the command that makes it
        dex = read_export(run, "diffusion")
        if dex.manifest.get("latent") != "mu":
            raise DataError(f"{run} exports {dex.manifest.get('latent')!r}, not the physics latent mu: "
                            f"mu_regressor.diffusion_run must name an 'ours' run")
        video = upstream_run(cfg, "video")
        vex = read_export(video, "video")
        self.diffusion_run, self.video_run = run, video.name
        self.data = {}
        for split, path in dex.splits.items():
            if split not in vex.splits:
                raise DataError(f"the video export {video} has no '{split}' split, which {run} exported")
            mt, vt = read_side_table(path), read_side_table(vex.splits[split])
            if "mu" not in mt.arrays or "nu" not in vt.arrays:
                raise DataError(f"{mt.path} needs 'mu' and {vt.path} 'nu' (have {sorted(mt.arrays)}, {sorted(vt.arrays)})")
            keys = list(mt.keys)
            nu = torch.from_numpy(vt.lookup(keys)["nu"]).float()  # (N, D): DataError naming a missing key
            self.data[split] = (keys, nu, torch.from_numpy(mt.arrays["mu"]).float())  # (N, L)
        if "train" not in self.data or not self.data["train"][0]:
            raise DataError(f"{run} exported no training clips' mu")

    @property
    def dims(self) -> tuple[int, int]:
        _k, nu, mu = self.data["train"]
        return int(nu.shape[1]), int(mu.shape[1])

    def num_train_batches(self, cfg: Any, world_size: int) -> int:
        if cfg.train.batches_per_epoch > 0:
            return cfg.train.batches_per_epoch
        return max(1, len(self.data["train"][0]) // (cfg.loader.batch_size * world_size))

    def train_batches(self, cfg: Any, epoch: int, rank: int, world_size: int) -> Iterator[dict[str, Any]]:
        """This rank's batches of ``epoch``: a permutation seeded by (seed, epoch), strided by rank, cycled as needed."""
        keys, nu, mu = self.data["train"]
        g = torch.Generator().manual_seed(cfg.seed * 100003 + epoch)
        order = torch.randperm(len(keys), generator=g)[rank::world_size]  # (n,)
        b = cfg.loader.batch_size
        for i in range(self.num_train_batches(cfg, world_size)):
            idx = order[torch.arange(i * b, (i + 1) * b) % order.numel()]  # (b,): wraps when batches exceed one pass
            yield {"key": [keys[j] for j in idx.tolist()], "nu": nu[idx], "mu": mu[idx]}

    def selection(self, cfg: Any) -> tuple[str, str]:
        return "val/mse", "min"

    # ------------------------------------------------------------------ model and loss
    def build_model(self, cfg: Any) -> nn.Module:
        from physdiff.models.mu_regressor import MuRegressor

        nu_dim, mu_dim = self.dims
        return MuRegressor.from_config(cfg.mu_regressor, nu_dim=nu_dim, mu_dim=mu_dim)

    def loss(self, model: nn.Module, batch: dict[str, Any], cfg: Any) -> tuple[Tensor, dict[str, float]]:
        device = next(model.parameters()).device
        pred = model(batch["nu"].to(device))  # (B, L): through the DDP wrapper's forward
        diff = pred - batch["mu"].to(device)
        return (diff.square() if cfg.mu_regressor.loss == "mse" else diff.abs()).mean(), {}

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, model: nn.Module, cfg: Any, ctx: EvalContext) -> dict[str, float]:
        """Validation MSE of the regressed mu, of the training mean, and of the mu retrieved by nu."""
        from physdiff.retrieval import query

        if EVAL_SPLIT not in self.data or not self.data[EVAL_SPLIT][0]:
            return {}
        device = next(model.parameters()).device
        _k, nu, mu = self.data[EVAL_SPLIT]
        _kt, nu_train, mu_train = self.data["train"]
        pred = model.predict(nu.to(device)).float().cpu()  # (V, L)
        _d, idx = query(nu_train, nu, k=1)  # (V, 1): the paper's retrieval
        retrieved = mu_train[idx[:, 0]]  # (V, L)
        mean = mu_train.mean(0, keepdim=True)  # (1, L)
        cos = torch.nn.functional.cosine_similarity(pred, mu, dim=1)  # (V,)
        return {"val/mse": float((pred - mu).square().mean()), "val/mse_train_mean": float((mean - mu).square().mean()),
                "val/mse_retrieved": float((retrieved - mu).square().mean()), "val/cosine": float(cos.mean()),
                "val/pred_std": float(pred.std(0).mean()), "val/target_std": float(mu.std(0).mean()),
                "val/clips": float(mu.shape[0])}

    # ------------------------------------------------------------------ export
    @torch.no_grad()
    def export(self, model: nn.Module, cfg: Any, out: Any) -> None:
        """The predicted mu of every clip of every split."""
        device = next(model.parameters()).device
        nu_dim, mu_dim = self.dims
        out.manifest.update(diffusion_run=self.diffusion_run.name, diffusion_run_dir=str(self.diffusion_run),
                            video_run=self.video_run, nu_dim=nu_dim, mu_dim=mu_dim,
                            arrays={"mu": f"(N, {mu_dim}) the physics latent predicted from nu"})
        for split, (keys, nu, _mu) in self.data.items():
            pred = torch.cat([model.predict(nu[i : i + 4096].to(device)).float().cpu()
                              for i in range(0, nu.shape[0], 4096)]) if keys else torch.zeros(0, mu_dim)  # (N, L)
            out.table(split, keys, {"mu": pred}, {"diffusion_run": self.diffusion_run.name})
