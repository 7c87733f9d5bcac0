"""The index stage: nu of every training clip -> mu of the trained physics encoder, in its own run folder,
reused, queried."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.stages.trained_runs import config, overrides, train_upstream

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def runs(debug_data: dict) -> dict:
    return train_upstream(debug_data, ("ours", "video_label", "video"))


def test_index_maps_training_nu_to_the_trained_mu(debug_data: dict, runs: dict) -> None:
    from physdiff import identity
    from physdiff.artifacts import read_export
    from physdiff.data.sidetable import read_side_table
    from physdiff.inference.conditioning import physics_latents
    from physdiff.inference.index import INDEX_FILE, data_manifest_hash
    from physdiff.inference.load import load_diffusion
    from physdiff.retrieval import load_index, query
    from physdiff.stages.diffusion import DiffusionRecipe
    from physdiff.stages.index import run_index

    cfg = config(debug_data)
    folder = identity.artifact_dir(cfg, "index")
    assert folder.name == runs["diffusion"]["ours"].name.replace("diffusion-", "index-", 1)  # its own run folder
    path = folder / INDEX_FILE
    (folder / "DONE.json").unlink(missing_ok=True)
    out = run_index(cfg)
    assert out["built"] and Path(out["path"]) == folder and (folder / "DONE.json").is_file()
    index = load_index(path, verify_hash=True)
    man = json.loads(path.with_suffix(".json").read_text())
    assert man["diffusion_run_id"] == runs["diffusion"]["ours"].name and man["variant"] == "ours"
    assert man["data_manifest_hash"] == data_manifest_hash(debug_data["shards"], "train")
    video = read_side_table(read_export(runs["video"], "video").table("train"))
    assert man["count"] == len(video.keys) == len(index) and man["key_dim"] == video.arrays["nu"].shape[1]
    # Keys are the video run's nu; values are mu of the trained physics encoder, recomputed here from the priors.
    assert torch.equal(index.keys, torch.from_numpy(video.arrays["nu"]))
    loaded = load_diffusion(runs["diffusion"]["ours"])
    recipe = DiffusionRecipe()
    recipe.setup(loaded.cfg, 0, 1)
    batch = next(iter(recipe.loader(loaded.cfg, "train", "eval")))
    with torch.no_grad():
        mu = physics_latents(loaded, batch)  # (B, L)
    rows = [index.clip_keys.index(k) for k in batch["key"]]
    assert torch.allclose(index.values[rows], mu, atol=1e-5)
    # A training nu retrieves its own clip at distance 0.
    d, i = query(index, index.keys[rows])
    assert [index.clip_keys[j] for j in i[:, 0].tolist()] == list(batch["key"]) and float(d.max()) == 0.0
    # Same weights and data: reused, not rebuilt.
    assert run_index(cfg)["built"] is False


def test_label_variant_indexes_its_class_embedding_and_video_variant_has_none(debug_data: dict, runs: dict,
                                                                              tmp_path: Path) -> None:
    from physdiff.errors import DataError
    from physdiff.inference.index import build_run_index
    from physdiff.inference.load import load_diffusion
    from physdiff.retrieval import load_index

    index, path = build_run_index(runs["diffusion"]["video_label"], tmp_path / "label-index")
    assert index.manifest["value_name"] == "label_embedding"
    model = load_diffusion(runs["diffusion"]["video_label"]).model
    assert index.value_dim == model.conditioner.label.embedding_dim
    assert len(load_index(path)) == len(index)
    # The "video" variant conditions on nu only: asking for its index is a clear error; so is an unfinished run.
    with pytest.raises(DataError, match="no index"):
        build_run_index(runs["diffusion"]["video"], tmp_path / "video-index")
    fake = runs["diffusion"]["video_label"].parent / "not-a-run"
    with pytest.raises(DataError, match="not finished"):
        build_run_index(fake, tmp_path / "fake-index")


def test_launcher_dispatches_the_index_stage(debug_data: dict, runs: dict) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, str(REPO / "cluster" / "launch.py"), "--stage", "index", "--local",
                        "--preset", "debug", *overrides(debug_data)], capture_output=True, text=True, timeout=180,
                       env=env, cwd=REPO)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    index_run = runs["diffusion"]["ours"].name.replace("diffusion-", "index-", 1)
    assert "[index]" in p.stderr and index_run in p.stderr
