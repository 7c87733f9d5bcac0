"""Rebuild trained models from their run folders (``config.json`` + ``export/model.safetensors``).

    loaded = load_diffusion("data/runs/diffusion-ours-0123456789")    # LoadedDiffusion (model, cfg, run_dir)
    video, vcfg = load_video_encoder(upstream_run(loaded.cfg, "video"))
    clf = load_classifier(run_dir)

A run's config is read with :func:`load_run_config`, which points ``paths.data_root`` at the data folder
the run folder lives in: a run copied or mounted elsewhere, or loaded from another working directory,
still finds the runs and shards it was trained on. Everything here reads finished artifacts only and
fails with a :class:`physdiff.errors.DataError` naming the missing one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from physdiff import identity
from physdiff.artifacts import finished, read_export
from physdiff.errors import DataError


def load_run_config(run_dir: str | Path) -> Any:
    """The resolved config of a run folder, with ``paths.data_root`` set to the folder's own data root."""
    from physdiff.config import Config

    run_dir = Path(run_dir).expanduser().resolve()
    path = run_dir / "config.json"
    if not path.is_file():
        raise DataError(f"{run_dir} is not a run folder (no config.json)")
    cfg = Config.from_json(path)
    try:
        cfg.paths.data_root = str(identity.data_root_of_run(run_dir))
    except Exception:  # a run folder outside <data>/runs/ (a user's copy): keep what the config says
        pass
    return cfg


def upstream_run(cfg: Any, stage: str) -> Path:
    """The run folder of the ``prior`` or ``video`` stage that a diffusion config reads.

    ``diffusion.<stage>_run`` names it explicitly; empty means the run of this same config.
    """
    from physdiff.config import Config  # noqa: F401  (cfg is a Config)

    override = getattr(cfg.diffusion, f"{stage}_run", "")
    if override:
        return Path(override).expanduser().resolve()
    return identity.artifact_dir(cfg, stage)


# ----------------------------------------------------------------------------- diffusion


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


def _nu_dim_from_state(state: Mapping[str, Tensor], cfg: Any, source: Path) -> int:
    if cfg.diffusion.visual_input == "logits":
        return 0
    w = state.get("conditioner.visual.0.weight")  # LayerNorm(nu_dim)
    if w is None:
        raise DataError(f"{source} lacks conditioner.visual.0.weight: not a physdiff diffusion model")
    return int(w.shape[0])


def _fit(model: nn.Module, state: Mapping[str, Tensor], source: Path, cfg_path: Path) -> None:
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise DataError(f"{source} does not fit the model of {cfg_path} (missing {list(missing)[:3]}, "
                        f"unexpected {list(unexpected)[:3]})")


def load_diffusion(run_dir: str | Path, device: str | torch.device = "cpu", *, checkpoint: bool = False) -> LoadedDiffusion:
    """Rebuild a finished diffusion run's model (U-Net + conditioner with its physics encoder).

    Reads ``config.json`` and the exported weights; ``checkpoint=True`` takes the newest complete
    training checkpoint instead (a run still training).
    """
    from physdiff.models.denoiser import PhysicsDiffusion
    from physdiff.training import checkpoint as ck

    run_dir = Path(run_dir).expanduser().resolve()
    cfg = load_run_config(run_dir)
    if checkpoint:
        last = ck.latest_checkpoint(run_dir / "checkpoints")
        if last is None:
            raise DataError(f"no complete checkpoint in {run_dir / 'checkpoints'}: train the diffusion stage")
        state, source = ck.load_state(last.path)["model"], last.path / "state.pt"
    else:
        finished(run_dir, "diffusion")
        ex = read_export(run_dir, "diffusion")
        state, source = ex.weights(), ex.file("model")
    model = PhysicsDiffusion.from_config(cfg, nu_dim=_nu_dim_from_state(state, cfg, source))
    _fit(model, state, source, run_dir / "config.json")
    model.to(device).eval()
    return LoadedDiffusion(model, cfg, run_dir, source, _nu_dim_from_state(state, cfg, source))


# ----------------------------------------------------------------------------- video encoder, classifier


def load_video_encoder(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, Any]:
    """The trained visual encoder of a finished video run (its exported weights) and the run's config."""
    from physdiff.data.labels import GREATEST_HITS_MATERIALS
    from physdiff.models.video import VideoEncoder

    run_dir = Path(run_dir).expanduser().resolve()
    cfg = load_run_config(run_dir)
    finished(run_dir, "video")
    ex = read_export(run_dir, "video")
    v = cfg.video
    model = VideoEncoder(v.backbone, num_frames=v.num_frames, fold_div=v.tsm_fold_div,
                         num_classes=len(GREATEST_HITS_MATERIALS), dropout=v.dropout,
                         small_widths=v.small_widths, small_blocks=v.small_blocks)  # weights below, not video.pretrained
    _fit(model, ex.weights(), ex.file("model"), run_dir / "config.json")
    return model.to(device).eval(), cfg


def load_classifier(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """The trained metric classifier of a finished classifier run and its export manifest."""
    from physdiff.data.labels import GREATEST_HITS_MATERIALS
    from physdiff.models.spec_classifier import build_spec_classifier

    run_dir = Path(run_dir).expanduser().resolve()
    cfg = load_run_config(run_dir)
    finished(run_dir, "classifier")
    ex = read_export(run_dir, "classifier")
    model = build_spec_classifier(len(GREATEST_HITS_MATERIALS), cfg.classifier)
    _fit(model, ex.weights(), ex.file("model"), run_dir / "config.json")
    return model.to(device).eval(), dict(ex.manifest)
