"""The prior stage (paper Sec. 3.2): learn the residual parameters (w, gamma) of every clip.

Recipe for the engine (:mod:`physdiff.training.trainer`):

- model: :class:`physdiff.models.prior.ResidualPrior` over the normalised log-magnitude spectrogram
  (F = n_fft/2 + 1 bins x N frames of ``cfg.audio``);
- loss: multi-resolution STFT between ``modal_plus_residual(modal, residual)`` (the residual added to the
  peak-normalised modal part with ``prior.normalize_modal``, as the official code does) and the peak-normalised
  recording, where ``modal`` is the eq.-4 resynthesis of the clip's shard modes (no gradient) and
  ``residual`` is eqs. 5-6 with the predicted (gamma, w);
- evaluation (the paper's Fig. 5a point for this M): validation MR-STFT loss of modal-only
  resynthesis and of modal + residual, plus spectrogram figures and WAVs of a few clips;
- export (:mod:`physdiff.artifacts`): the weights, and (w, gamma) for every clip of every split as side
  tables ``<run>/export/prior-<split>.safetensors`` (joined to the shards by key, see
  :mod:`physdiff.data.sidetable`). The modal priors (f, p, lambda) are in the shards themselves, so the
  diffusion stage reads all five priors with its shards.

The held-out split is the validation split (``val``, carved by video from the training videos at shard
build time); the test split is left to the final report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from physdiff.data.layout import VALIDATION
from physdiff.errors import DataError
from physdiff.stages.base import ShardRecipe, check_export_count
from physdiff.training.recipe import EvalContext

EVAL_SPLIT = VALIDATION  # every selection on the validation split; test is only for the report


class PriorRecipe(ShardRecipe):
    name = "prior"

    def __init__(self) -> None:
        super().__init__()
        self._noise: nn.Module | None = None
        self._mrstft: nn.Module | None = None

    def selection(self, cfg: Any) -> tuple[str, str]:
        """The Fig. 5a loss: modal + residual MR-STFT on the validation split picks the exported weights."""
        return "val/mrstft_full", "min"

    # ------------------------------------------------------------------ model and loss
    def build_model(self, cfg: Any) -> nn.Module:
        from physdiff.models.prior import ResidualPrior

        p = cfg.prior
        return ResidualPrior(cfg.audio.num_bins, cfg.audio.num_frames, p.residual_dims, p.d_model, p.layers,
                             p.heads, p.dropout, p.t60_min, p.t60_range, p.init_weight)

    def _parts(self, cfg: Any, device: torch.device) -> tuple[nn.Module | None, nn.Module]:
        from physdiff.physics import MultiResolutionSTFTLoss, ResidualNoise

        if self._mrstft is None:
            self._mrstft = MultiResolutionSTFTLoss()
            if cfg.prior.residual_dims > 0:
                ph = cfg.physics
                self._noise = ResidualNoise(cfg.prior.residual_dims, cfg.audio.sample_rate, cfg.audio.num_samples,
                                            ph.residual_fmin, ph.residual_spacing, ph.residual_seed)
        self._mrstft = self._mrstft.to(device)
        if self._noise is not None:
            self._noise = self._noise.to(device)
        return self._noise, self._mrstft

    def forward(self, model: nn.Module, batch: dict[str, Any], cfg: Any) -> dict[str, torch.Tensor]:
        """Resynthesise a batch: recording, modal-only and modal + residual, all peak-normalised (B, T)."""
        from physdiff.physics import (Modes, log_magnitude, modal_plus_residual, normalize_spectrogram, peak_normalize,
                                      synthesize_modes)

        device = next(model.parameters()).device
        audio = torch.as_tensor(batch["audio"], dtype=torch.float32).to(device)  # (B, T)
        modes = Modes.from_stacked(torch.as_tensor(batch["modes"], dtype=torch.float32).to(device))  # (B, 3, D)
        noise, _ = self._parts(cfg, device)
        with torch.no_grad():
            modal = synthesize_modes(modes, cfg.audio.sample_rate, audio.shape[-1])  # (B, T)
        spec = normalize_spectrogram(log_magnitude(audio, cfg.audio), cfg.audio)  # (B, F, N)
        weight, gamma = model(spec)  # (B, M), (B, M)
        if noise is not None:
            resid = noise(gamma.float(), weight.float())  # (B, T)
            full = modal_plus_residual(modal, resid, normalize_modal=cfg.prior.normalize_modal)  # (B, T)
        else:  # M = 0: modal only; the zero term keeps every parameter in the graph for DDP
            full = peak_normalize(modal) + 0.0 * (weight.sum() + gamma.sum())
        return {"target": peak_normalize(audio), "modal": peak_normalize(modal), "full": full,
                "weight": weight, "gamma": gamma}

    def loss(self, model: nn.Module, batch: dict[str, Any], cfg: Any) -> tuple[torch.Tensor, dict[str, float]]:
        out = self.forward(model, batch, cfg)
        _, mrstft = self._parts(cfg, out["full"].device)
        loss = mrstft(out["full"].float(), out["target"].float())
        return loss, {}

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, model: nn.Module, cfg: Any, ctx: EvalContext) -> dict[str, float]:
        """Validation MR-STFT of modal-only vs modal + residual on the held-out split (Fig. 5a point)."""
        from physdiff.data.reader import load_manifest

        device = next(model.parameters()).device
        try:
            load_manifest(self.shard_root, EVAL_SPLIT)
        except DataError:
            return {}
        _, mrstft = self._parts(cfg, device)
        tot_modal = tot_full = 0.0
        n = 0
        shown = 0
        for bi, batch in enumerate(self.loader(cfg, EVAL_SPLIT, "eval", rank=0, world_size=1)):
            if cfg.train.eval_batches and bi >= cfg.train.eval_batches:
                break
            out = self.forward(model, batch, cfg)
            for j in range(out["target"].shape[0]):  # per clip, so the mean does not depend on batching
                t = out["target"][j : j + 1]
                tot_modal += float(mrstft(out["modal"][j : j + 1], t))
                tot_full += float(mrstft(out["full"][j : j + 1], t))
                n += 1
            if shown < ctx.num_examples:
                k = min(ctx.num_examples - shown, out["target"].shape[0])
                _write_media(ctx.media_dir, batch["key"][:k], out, k, cfg)
                shown += k
        if n == 0:
            return {}
        return {"val/mrstft_modal": tot_modal / n, "val/mrstft_full": tot_full / n,
                "val/residual_gain": (tot_modal - tot_full) / n, "val/clips": float(n)}

    @torch.no_grad()
    def clip_losses(self, model: nn.Module, cfg: Any, split: str) -> dict[str, tuple[float, float]]:
        """Per clip of ``split``: (MR-STFT of modal alone, of modal + residual) against the recording.

        The final report's scoring of a selected prior (``physdiff.sweeps.residual_dims.score_selected``
        calls it with ``test``); per clip, so a caller can bootstrap over clips or keep a subset.
        """
        device = next(model.parameters()).device
        _, mrstft = self._parts(cfg, device)
        out_losses: dict[str, tuple[float, float]] = {}
        for batch in self.loader(cfg, split, "eval", rank=0, world_size=1):
            out = self.forward(model, batch, cfg)
            for j, key in enumerate(batch["key"]):
                t = out["target"][j : j + 1]  # (1, T)
                out_losses[key] = (float(mrstft(out["modal"][j : j + 1], t)), float(mrstft(out["full"][j : j + 1], t)))
        return out_losses

    # ------------------------------------------------------------------ export
    def export(self, model: nn.Module, cfg: Any, out: Any) -> None:
        """(w, gamma) of every clip of every split as side tables."""
        super().export(model, cfg, out)
        from physdiff.data.layout import SPLITS
        from physdiff.data.reader import load_manifest
        from physdiff.physics import log_magnitude, normalize_spectrogram

        device = next(model.parameters()).device
        m = cfg.prior.residual_dims
        out.manifest.update(residual_dims=m, arrays={"weight": "(N, M) band weights in (0, 1)",
                                                     "gamma": "(N, M) decay, dB/s"})
        for split in SPLITS:
            try:
                sman = load_manifest(self.shard_root, split)
            except DataError:
                continue
            keys: list[str] = []
            ws, gs = [], []
            loader = self.loader(cfg, split, "eval", rank=0, world_size=1)
            with torch.no_grad():
                for batch in loader:
                    audio = torch.as_tensor(batch["audio"], dtype=torch.float32).to(device)  # (B, T)
                    w, g = model(normalize_spectrogram(log_magnitude(audio, cfg.audio), cfg.audio))  # (B, M) x 2
                    keys += list(batch["key"])
                    ws.append(w.float().cpu())
                    gs.append(g.float().cpu())
            check_export_count("prior", split, keys, sman, self.shard_root, cfg, loader)
            w_all = torch.cat(ws) if ws else torch.zeros(0, m)  # (N, M)
            g_all = torch.cat(gs) if gs else torch.zeros(0, m)  # (N, M)
            out.table(split, keys, {"weight": w_all, "gamma": g_all}, {"residual_dims": m},
                      skipped=list(loader.skipped), shards_config_hash=sman.get("config_hash", ""))


def _write_media(media_dir: Path, keys: list[str], out: dict[str, torch.Tensor], k: int, cfg: Any) -> None:
    """Spectrogram figure (recording | modal | modal + residual) and WAVs of the first k clips."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import soundfile as sf

    from physdiff.physics import db_spectrogram

    media_dir.mkdir(parents=True, exist_ok=True)
    names = ("target", "modal", "full")
    titles = ("recording", "modal only", "modal + residual")
    for j in range(k):
        fig, axes = plt.subplots(1, 3, figsize=(10, 3), sharey=True)
        for ax, name, title in zip(axes, names, titles):
            db = db_spectrogram(out[name][j : j + 1].detach().float().cpu(), cfg.audio.n_fft, cfg.audio.hop_length,
                                cfg.audio.floor_db)[0]  # (F, N)
            ax.imshow(db.numpy(), origin="lower", aspect="auto", cmap="magma")
            ax.set_title(title)
            ax.set_xlabel("frame")
        axes[0].set_ylabel("bin")
        fig.suptitle(str(keys[j]))
        fig.tight_layout()
        fig.savefig(media_dir / f"{keys[j]}.png", dpi=80)
        plt.close(fig)
        for name in names:
            x = out[name][j].detach().float().cpu().numpy()
            peak = max(1e-9, float(abs(x).max()))
            sf.write(media_dir / f"{keys[j]}-{name}.wav", x * (0.99 / peak), cfg.audio.sample_rate)
