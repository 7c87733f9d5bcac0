"""The index stage (paper Sec. 3.4): nu of every training clip -> its latent, for retrieval at inference.

No sound exists at test time, so the physics latent mu of a test clip is borrowed from the training clip
whose visual latent nu is nearest. This stage writes that key-value table for a finished diffusion run:

- keys: nu (N, D_nu) of every training clip, from the video run the diffusion run was trained on
  (its export ``video-train.safetensors``);
- values: the latent the variant adds to nu: mu from the *trained* physics encoder for "ours" (the
  diffusion export ``diffusion-train.safetensors``, computed by that encoder on the clip's priors), the
  spectrogram latent for "video_spec", the class embedding for "video_label" (computed here with the
  trained conditioner); "video" needs no latent and so no index;
- one safetensors file + JSON manifest (:mod:`physdiff.retrieval`) at ``<diffusion run>/index/index.safetensors``
  with the diffusion run id (its folder name ``diffusion-<hash>``, plus the MLflow run id), the hash of
  the training shards' manifest, the dims and the count; logged to MLflow as an artifact of the
  diffusion run.

An index whose manifest names the same diffusion weights and data is reused; anything else rebuilds it::

    python cluster/launch.py --stage index --local --preset tiny        # after the diffusion stage
    python -m physdiff.stages.index --preset tiny diffusion.variant=video_spec
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch

from physdiff.checksum import file_sha256
from physdiff.errors import DataError

INDEX_DIR = "index"
INDEX_FILE = "index.safetensors"


def index_path(diffusion_run_dir: str | Path) -> Path:
    """Where the retrieval index of a diffusion run lives."""
    return Path(diffusion_run_dir) / INDEX_DIR / INDEX_FILE


def data_manifest_hash(shard_root: str | Path, split: str = "train") -> str:
    """sha256 of ``<shards>/<split>/manifest.json``: names the exact shards (and their sha256s) indexed."""
    p = Path(shard_root) / split / "manifest.json"
    if not p.is_file():
        raise DataError(f"no shard manifest {p}: build the shards first")
    return file_sha256(p)


def finished_run(run_dir: str | Path, stage: str) -> dict[str, Any]:
    """``DONE.json`` of a finished stage run; a clear error naming the folder when it is not finished."""
    run_dir = Path(run_dir)
    done = run_dir / "DONE.json"
    if not done.is_file():
        raise DataError(f"the {stage} run {run_dir} is not finished (no DONE.json): "
                        f"train it first (python cluster/launch.py --stage {stage} ...)")
    return json.loads(done.read_text())


def diffusion_run_for(cfg: Any, variant: str | None = None) -> Path:
    """The diffusion run folder of ``cfg`` (with ``diffusion.variant`` replaced by ``variant`` when given)."""
    from physdiff.config import apply_overrides, from_dict, Config
    from physdiff.stages import stage_run_dir

    if variant is not None and variant != cfg.diffusion.variant:
        cfg = from_dict(Config, cfg.to_dict())
        apply_overrides(cfg, {"diffusion.variant": variant})
    return stage_run_dir(cfg, "diffusion")


def training_latents(loaded: Any, keys: list[str]) -> tuple[torch.Tensor, str]:
    """The variant's latent (N, L) of the training clips ``keys`` (in that order) and its name.

    "ours" / "video_spec": read from the diffusion run's own export (written by the trained model after
    its last step); "video_label": the trained class embedding of each clip's material, computed here.
    """
    from physdiff.data.sidetable import read_side_table
    from physdiff.stages.diffusion import LATENT_NAME, DiffusionRecipe, condition_latent

    variant = loaded.variant
    name = LATENT_NAME.get(variant)
    if variant == "video":
        raise DataError(f"diffusion run {loaded.run_dir} is variant 'video' (conditioned on nu only): it retrieves "
                        f"no latent, so it has no index")
    if name is not None:
        man_path = loaded.run_dir / "export" / "manifest.json"
        man = json.loads(man_path.read_text()) if man_path.is_file() else {}
        entry = man.get("splits", {}).get("train")
        if entry is None:
            raise DataError(f"diffusion run {loaded.run_dir} exported no training latents ({man_path}); rerun its export")
        table = read_side_table(loaded.run_dir / "export" / entry["path"])
        if name not in table.arrays:
            raise DataError(f"{table.path} holds no '{name}' array (has {sorted(table.arrays)})")
        return torch.from_numpy(table.lookup(keys)[name]).float(), name  # (N, L)
    # video_label: the label embedding of the clip's material (what the conditioner saw in training).
    recipe = DiffusionRecipe()
    recipe.setup(loaded.cfg, 0, 1)
    device = next(loaded.model.parameters()).device
    got: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for batch in recipe.loader(loaded.cfg, "train", "eval"):
            lat = condition_latent(loaded, {"label": torch.as_tensor(batch["material"]).to(device)})  # (B, L)
            got.update({str(k): v for k, v in zip(batch["key"], lat.float().cpu())})
    missing = [k for k in keys if k not in got]
    if missing:
        raise DataError(f"training clips {missing[:3]} of the video export are not in the shards of {loaded.run_dir}")
    return torch.stack([got[k] for k in keys]), "label_embedding"  # (N, L)


def build_stage_index(diffusion_run_dir: str | Path, *, device: str = "cpu", tracking: bool = True,
                      force: bool = False) -> tuple[Any, Path, bool]:
    """Build (or reuse) the retrieval index of a finished diffusion run -> (index, path, built_now)."""
    from physdiff.retrieval import build_index, load_index, log_index_to_mlflow
    from physdiff.data.sidetable import read_side_table
    from physdiff.stages import shards_dir
    from physdiff.stages.diffusion import load_diffusion, upstream_exports, upstream_run_dir
    from physdiff.training.tracking import default_tracking_uri

    run_dir = Path(diffusion_run_dir)
    done = finished_run(run_dir, "diffusion")
    loaded = load_diffusion(run_dir, device)
    cfg = loaded.cfg
    shard_root = shards_dir(cfg)
    data_hash = data_manifest_hash(shard_root, "train")
    weights_hash = file_sha256(loaded.source)
    path = index_path(run_dir)
    if path.is_file() and not force:
        try:
            old = load_index(path)
            if (old.manifest.get("diffusion_weights_sha256") == weights_hash
                    and old.manifest.get("data_manifest_hash") == data_hash):
                return old, path, False
        except DataError:
            pass  # unreadable or stale: rebuilt below
    video_run = upstream_run_dir(cfg, "video")
    video_tables = upstream_exports(cfg, "video")
    if "train" not in video_tables:
        raise DataError(f"the video export of {video_run} has no training split")
    vt = read_side_table(video_tables["train"])
    if "nu" not in vt.arrays:
        raise DataError(f"video export {vt.path} has no 'nu' array (has {sorted(vt.arrays)})")
    keys = list(vt.keys)
    nu = torch.from_numpy(vt.arrays["nu"]).float()  # (N, D_nu)
    values, value_name = training_latents(loaded, keys)  # (N, L)
    manifest = {
        "diffusion_run_id": run_dir.name,
        "diffusion_run_dir": str(run_dir),
        "diffusion_weights_sha256": weights_hash,
        "mlflow_run_id": done.get("mlflow_run_id"),
        "variant": loaded.variant,
        "key_name": "nu",
        "value_name": value_name,
        "video_run_dir": str(video_run),
        "video_export": str(vt.path),
        "data_manifest_hash": data_hash,
        "shard_root": str(shard_root),
        "split": "train",
    }
    index = build_index(nu, values, keys, manifest, path)
    if tracking and done.get("mlflow_run_id") and cfg.tracking.enabled:
        log_index_to_mlflow(path, done["mlflow_run_id"], default_tracking_uri(cfg))
    return index, path, True


def run_index(cfg: Any, *, force: bool = False) -> dict[str, Any]:
    """The ``index`` task stage: index the diffusion run of ``cfg`` (its ``diffusion.variant``)."""
    run_dir = diffusion_run_for(cfg)
    index, path, built = build_stage_index(run_dir, tracking=cfg.tracking.enabled, force=force)
    verb = "built" if built else "complete (reused)"
    print(f"[index] {verb}: {path} ({len(index)} training clips, nu {index.key_dim}-d -> "
          f"{index.manifest.get('value_name')} {index.value_dim}-d)", flush=True)
    return {"stage": "index", "path": str(path), "count": len(index), "built": built, "run_dir": str(run_dir)}


def main(argv: list[str] | None = None) -> int:
    import argparse

    from physdiff.config import add_config_args, config_from_args

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--force", action="store_true", help="rebuild even when a matching index exists")
    add_config_args(ap)
    args = ap.parse_args(argv)
    run_index(config_from_args(args), force=args.force)
    return 0


if __name__ == "__main__":
    from physdiff.errors import run_cli

    run_cli(lambda: main(sys.argv[1:]))
