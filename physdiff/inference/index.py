"""The retrieval table of a diffusion run (paper Sec. 3.4): nu of every training clip -> that clip's latent.

No sound exists at test time, so the non-visual latent of a test clip (mu for "ours") is borrowed from
the training clip whose visual latent nu is nearest. The table is built from two finished exports:

- keys: nu (N, D_nu) of every training clip, the video run's ``video-train`` side table;
- values: the variant's latent of the same clips, the diffusion run's ``diffusion-train`` side table
  (mu computed by the *trained* physics encoder, the spectrogram latent, or the class embedding).

It lives in its own run folder, ``<data>/runs/index-<variant>-<hash>/`` (``index.safetensors`` +
``index.json`` + ``DONE.json``), named by the diffusion run's identity; the index stage builds it and
:func:`load_run_index` loads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from physdiff import identity
from physdiff.artifacts import finished, read_export, write_done
from physdiff.checksum import file_sha256
from physdiff.errors import DataError
from physdiff.inference.conditioning import LATENT_NAME

INDEX_FILE = "index.safetensors"


def index_dir_for(diffusion_cfg: Any) -> Path:
    """The index run folder of a diffusion run's config."""
    return identity.artifact_dir(diffusion_cfg, "index")


def data_manifest_hash(shard_root: str | Path, split: str = "train") -> str:
    """sha256 of ``<shards>/<split>/manifest.json``: names the exact shards (and their sha256s) indexed."""
    p = Path(shard_root) / split / "manifest.json"
    if not p.is_file():
        raise DataError(f"no shard manifest {p}: build the shards first")
    return file_sha256(p)


def build_run_index(diffusion_run: str | Path, out_dir: str | Path) -> tuple[Any, Path]:
    """Build the index of a finished diffusion run into ``out_dir`` (marked finished) -> (index, path)."""
    from physdiff.data.sidetable import read_side_table
    from physdiff.inference.load import load_run_config, upstream_run
    from physdiff.retrieval import build_index

    diffusion_run = Path(diffusion_run).resolve()
    done = finished(diffusion_run, "diffusion")
    cfg = load_run_config(diffusion_run)
    variant = cfg.diffusion.variant
    name = LATENT_NAME[variant]
    if name is None:
        raise DataError(f"diffusion run {diffusion_run} is variant 'video' (conditioned on nu only): it retrieves "
                        f"no latent, so it has no index")
    dex = read_export(diffusion_run, "diffusion")
    video_run = upstream_run(cfg, "video")
    vt = read_side_table(read_export(video_run, "video").table("train"))
    if "nu" not in vt.arrays:
        raise DataError(f"video export {vt.path} has no 'nu' array (has {sorted(vt.arrays)})")
    lt = read_side_table(dex.table("train"))
    if name not in lt.arrays:
        raise DataError(f"{lt.path} holds no '{name}' array (has {sorted(lt.arrays)})")
    keys = list(vt.keys)
    nu = torch.from_numpy(vt.arrays["nu"]).float()  # (N, D_nu)
    values = torch.from_numpy(lt.lookup(keys)[name]).float()  # (N, L), rows in nu's order
    shard_root = identity.shards_dir(cfg)
    out_dir = Path(out_dir)
    manifest = {
        "diffusion_run_id": diffusion_run.name,
        "diffusion_run_dir": str(diffusion_run),
        "diffusion_weights_sha256": file_sha256(dex.file("model")),
        "mlflow_run_id": done.get("mlflow_run_id"),
        "variant": variant,
        "key_name": "nu",
        "value_name": name,
        "video_run": video_run.name,
        "data_manifest_hash": data_manifest_hash(shard_root, "train"),
        "split": "train",
    }
    index = build_index(nu, values, keys, manifest, out_dir / INDEX_FILE)
    write_done(out_dir, {"stage": "index", "variant": variant, "count": len(index), "diffusion_run": diffusion_run.name,
                         "key_dim": index.key_dim, "value_dim": index.value_dim, "value_name": name})
    return index, out_dir / INDEX_FILE


def load_run_index(index_dir: str | Path, diffusion_run: str | Path | None = None, device: str = "cpu") -> Any:
    """The finished index of ``index_dir``; with ``diffusion_run``, checked to index exactly those weights."""
    from physdiff.retrieval import load_index

    index_dir = Path(index_dir)
    finished(index_dir, "index")
    index = load_index(index_dir / INDEX_FILE, device=device)
    if diffusion_run is not None:
        weights = read_export(diffusion_run, "diffusion").file("model")
        if index.manifest.get("diffusion_weights_sha256") != file_sha256(weights):
            raise DataError(f"the index {index_dir} was built for other weights than {weights}: rebuild it "
                            f"(physdiff launch --stage index ...)")
    return index
