"""The diffusion stage on a generated debug world: overfitting, conditioning dropout, variants, launcher, resume.

Upstream inputs: the real prior stage is trained briefly on the session's debug shards (for w, gamma).
The visual latent nu comes from a *stand-in* video export written here, so these tests do not depend
on training the video stage: nu = a fixed random projection (seed 0) of the clip's material one-hot
plus small per-clip noise, logits = 3 x one-hot + noise, written with the real side-table writer in the
video stage's export format (``physdiff.stages.video.EXPORT_FORMAT``). The diffusion stage reads it
exactly as it reads a real video run (``diffusion.video_run=<folder>``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from physdiff.config import resolve_config
from tests.standins import write_video_export

REPO = Path(__file__).resolve().parents[2]
NU_DIM = 24
# Fast, quiet settings shared by every run here (part of the run hash, so runs are reused within the session).
FAST = ["tracking.enabled=false", "train.progress=false", "loader.num_workers=0", "train.log_every=1",
        "tracking.audio_examples=1"]


@pytest.fixture(scope="module")
def diff_data(debug_data: dict) -> dict:
    """Overrides pointing the diffusion stage at a briefly trained prior run and the stand-in video export."""
    from physdiff.stages import train_stage

    root = Path(debug_data["root"])
    prior_cfg = resolve_config("debug", [*debug_data["overrides"], *FAST, "train.epochs=1", "train.batches_per_epoch=2"])
    prior = train_stage(prior_cfg, "prior", cpu=True)
    assert prior.status in ("finished", "skipped")
    video_run = root / "stand-in-video-run"
    if not (video_run / "export" / "manifest.json").exists():
        write_video_export(video_run, debug_data["shards"], NU_DIM, seed=1, producer="test stand-in")
    over = [*debug_data["overrides"], *FAST, f"diffusion.prior_run={prior.run_dir}", f"diffusion.video_run={video_run}"]
    return {"overrides": over, "root": root}


def _recipe(diff_data: dict, extra: list[str]):
    from physdiff.stages.diffusion import DiffusionRecipe

    cfg = resolve_config("debug", [*diff_data["overrides"], *extra])
    r = DiffusionRecipe()
    r.setup(cfg, 0, 1)
    torch.manual_seed(0)
    return r, cfg, r.build_model(cfg)


def _first_batch(recipe, cfg, split: str = "train") -> dict:
    return next(iter(recipe.loader(cfg, split, "eval")))


@pytest.mark.parametrize("prediction,ratio", [("eps", 0.6), ("v", 0.75)])
def test_noise_prediction_loss_falls_on_a_tiny_overfit_set(diff_data: dict, prediction: str, ratio: float) -> None:
    """Eq. 8 (eps, the paper) and its v form (the tiny preset) both fall when the stage overfits a batch."""
    from physdiff.stages.diffusion import eval_timesteps, heldout_denoising_loss

    recipe, cfg, model = _recipe(diff_data, ["diffusion.cond_dropout=0.0", "loader.batch_size=2",
                                             f"diffusion.prediction={prediction}"])
    batch = _first_batch(recipe, cfg)
    x0, inp = recipe.inputs(batch, cfg, torch.device("cpu"))
    keys = list(batch["key"])
    grid = eval_timesteps(cfg.diffusion.timesteps, 6)

    def fixed_loss() -> float:
        model.eval()
        lc, _ = heldout_denoising_loss(model, x0, inp, keys, grid, seed=7)  # same t grid and noise each time
        model.train()
        return float(lc.mean())

    before = fixed_loss()
    assert fixed_loss() == before  # the held-out measure itself is deterministic
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    for _ in range(30):
        loss, _ = recipe.loss(model, batch, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = fixed_loss()
    print(f"held-out loss on the overfit set: {before:.4f} -> {after:.4f}")
    assert after < ratio * before, (before, after)


def test_conditioning_dropout_really_drops_in_the_stage(diff_data: dict) -> None:
    recipe, cfg, model = _recipe(diff_data, ["diffusion.cond_dropout=0.5"])
    batch = _first_batch(recipe, cfg)
    seen: list[torch.Tensor] = []
    hook = model.conditioner.register_forward_hook(lambda m, args, out: seen.append(out.detach()))
    null = model.conditioner.null.detach()
    model.train()
    model.zero_grad()
    for _ in range(10):
        loss, _ = recipe.loss(model, batch, cfg)
        loss.backward()
    dropped = torch.cat([(c == null).all(-1) for c in seen])  # (10 B,) rows replaced by the null condition
    assert 0.2 < float(dropped.float().mean()) < 0.8, dropped
    full = model.conditioner.encode(recipe.inputs(batch, cfg, torch.device("cpu"))[1])
    assert not (full == null).all(-1).any()  # the real condition is not the null vector
    # The null condition is learned: it receives gradient from the dropped rows.
    assert model.conditioner.null.grad is not None and model.conditioner.null.grad.abs().sum() > 0
    # Evaluation never drops.
    seen.clear()
    model.eval()
    with torch.no_grad():
        recipe.loss(model, batch, cfg)
    hook.remove()
    assert not (seen[0] == null).all(-1).any()


@pytest.mark.parametrize("variant", ["ours", "video", "video_label", "video_spec"])
def test_each_variant_trains_a_step(diff_data: dict, variant: str) -> None:
    from physdiff.eval.config import EvalConfig

    assert variant in EvalConfig().variants  # the stage trains exactly the diffusion variants evaluation compares
    recipe, cfg, model = _recipe(diff_data, [f"diffusion.variant={variant}"])
    batch = next(recipe.train_batches(cfg, 0, 0, 1))
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss, _ = recipe.loss(model, batch, cfg)
    loss.backward()
    opt.step()
    assert torch.isfinite(loss)
    changed = {k.split(".")[1] for k, v in model.named_parameters() if not torch.equal(v, before[k])
               and k.startswith("conditioner.")}
    want = {"ours": "physics", "video": "visual", "video_label": "label", "video_spec": "spec"}[variant]
    assert want in changed, changed  # the variant's own encoder is trained


def _launch(args: list[str], timeout: int = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(REPO / "cluster" / "launch.py"), *args], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=REPO)


@pytest.mark.timeout(300)
def test_launcher_cpu_two_processes_with_eval_media_and_export(diff_data: dict) -> None:
    from physdiff.data.sidetable import read_side_table
    from physdiff.inference.conditioning import assemble_condition, condition_inputs, physics_latents
    from physdiff.inference.load import load_diffusion
    from physdiff.inference.sampling import sample_spectrograms

    over = [*diff_data["overrides"], "train.epochs=2", "train.batches_per_epoch=2", "loader.batch_size=2"]
    p = _launch(["--stage", "diffusion", "--cpu", "--procs", "2", "--preset", "debug", *over])
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    run_dir = Path(next(l for l in p.stdout.splitlines() if l.startswith("run folder:")).split(":", 1)[1].strip())
    done = json.loads((run_dir / "DONE.json").read_text())
    assert done["world_size"] == 2 and done["step"] == 4 and done["epoch"] == 2
    m = done["metrics"]
    assert m["val/clips"] > 0 and m["val/denoise_loss"] > 0 and m["val/denoise_loss_null"] > 0 and "val/sample_mse" in m
    media = run_dir / "media" / "epoch_0002"
    assert list(media.glob("*.png")) and len(list(media.glob("*-generated.wav"))) == 1
    # The export: model weights + mu of every clip; load_diffusion rebuilds the model and reproduces mu.
    man = json.loads((run_dir / "export" / "manifest.json").read_text())
    assert man["variant"] == "ours" and man["nu_dim"] == NU_DIM and man["latent"] == "mu"
    table = read_side_table(run_dir / "export" / man["splits"]["train"]["path"])
    loaded = load_diffusion(run_dir)
    cfg = loaded.cfg
    from physdiff.stages.diffusion import DiffusionRecipe

    recipe = DiffusionRecipe()
    recipe.setup(cfg, 0, 1)
    batch = _first_batch(recipe, cfg)
    with torch.no_grad():
        mu = physics_latents(loaded, batch)  # (B, latent)
        assert torch.allclose(mu, torch.from_numpy(table.lookup(list(batch["key"]))["mu"]), atol=1e-5)
        # A condition assembled from (nu, mu) equals the conditioner's own; sampling from it is seeded.
        inp = condition_inputs(batch, "cpu")
        c = assemble_condition(loaded, inp["nu"], mu)
        assert torch.allclose(c, loaded.model.conditioner.encode(inp), atol=1e-6)
        x = [sample_spectrograms(loaded, c[:1], cfg.sampling, generator=torch.Generator().manual_seed(3), sampler="ddim",
                                 steps=3) for _ in range(2)]
    assert x[0].shape == (1, 1, cfg.audio.num_bins, cfg.audio.num_frames) and torch.equal(x[0], x[1])


def test_resume_from_a_checkpoint_matches_an_uninterrupted_run(diff_data: dict) -> None:
    from physdiff.stages import stage_run_dir
    from physdiff.stages import train_stage

    cfg = resolve_config("debug", [*diff_data["overrides"], "train.epochs=2", "train.batches_per_epoch=2",
                                   "train.checkpoint_every=1", "diffusion.eval_sample_steps=2"])
    run_dir = stage_run_dir(cfg, "diffusion")
    shutil.rmtree(run_dir, ignore_errors=True)
    full = train_stage(cfg, "diffusion", cpu=True)
    assert full.status == "finished" and full.step == 4
    from safetensors.torch import load_file

    want = load_file(str(run_dir / "export" / "model.safetensors"))
    shutil.rmtree(run_dir)
    calls = {"n": 0}

    def stop_after_three() -> bool:
        calls["n"] += 1
        return calls["n"] >= 3

    part = train_stage(cfg, "diffusion", stop_fn=stop_after_three, cpu=True)
    assert part.status == "stopped" and part.step == 3  # mid-epoch 1: the data cursor must be restored
    rest = train_stage(cfg, "diffusion", cpu=True)
    assert rest.status == "finished" and rest.step == 4
    got = load_file(str(run_dir / "export" / "model.safetensors"))
    for k in want:
        assert torch.equal(want[k], got[k]), k
