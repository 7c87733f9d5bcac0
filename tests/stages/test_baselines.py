"""The paper's comparison systems as pipeline stages, on the session's generated debug world.

One ``--stage all --local --preset debug`` launch (a real subprocess, the README's entry point) with every new
row in Tables 1 and 3 and Fig. 5b trains, through the engine, the ConvNet- and Transformer-based regressors,
Owens et al.'s cochleagram network, the ``video_mfcc`` diffusion variant (+ its index) and the nu -> mu regressor
(after the "ours" run), and scores them all in the evaluate stage. Then, for each system: its training loss fell,
its export is what the evaluation reads, and (Owens) retrieval returns training recordings. The prior, video and
metric classifier runs are the shared ones of ``tests/stages/trained_runs.py`` (found finished, not retrained).
"""

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
# Per-stage epochs (the stage sections, so the shared upstream runs keep their identity) and the new rows.
EPOCHS = 5
SYSTEMS = [f"{s}.epochs={EPOCHS}" for s in ("convnet", "tts", "owens", "mu_regressor")] + ["mu_regressor.lr=3e-3",
    f"diffusion.epochs={EPOCHS}", "diffusion.eval_every=1", "train.log_every=1",
    "eval.variants=nn_retrieval,convnet,tts,video_mfcc,ours", "eval.table3=nn_retrieval,owens_retrieval",
    "eval.fig5b=modal,modal_residual,ours,predicted_mu", "eval.bootstrap=50", "eval.bootstrap_set=10"]
NEW_STAGES = ("convnet", "tts", "owens", "mu_regressor", "diffusion-video_mfcc")


def _cfg(debug_data: dict, extra: list[str] = ()):
    return config(debug_data, [*SYSTEMS, *extra])


@pytest.fixture(scope="module")
def pipeline(debug_data: dict) -> dict:
    """Every system trained and scored by one ``--stage all`` launch; {"stdout", "runs": {step: run folder}}."""
    from physdiff.launch.pipeline import pipeline_steps

    train_upstream(debug_data, (), classifier=True)  # prior, video, classifier: shared with the other stage tests
    cmd = [sys.executable, str(REPO / "cluster" / "launch.py"), "--stage", "all", "--local", "--preset", "debug",
           *overrides(debug_data), *SYSTEMS, f"train.shards={debug_data['shards']}"]  # the fixture's shards: no world step
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=REPO, env=dict(os.environ, OMP_NUM_THREADS="2"))
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    cfg = _cfg(debug_data)
    runs = {s.name: s.output(cfg) for s in pipeline_steps(cfg)}
    return {"stdout": p.stdout, "log": p.stderr, "runs": runs, "cfg": cfg}  # the step lines are logged (stderr)


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


@pytest.mark.timeout(900)
@pytest.mark.parametrize("step", NEW_STAGES)
def test_each_system_trains_through_the_launcher_and_its_loss_falls(pipeline: dict, step: str) -> None:
    run = pipeline["runs"][step]
    done = json.loads((run / "DONE.json").read_text())
    assert done["epoch"] == EPOCHS and done["step"] == EPOCHS * 2  # debug: train.batches_per_epoch=2
    assert f"[all] {step}" in pipeline["log"]
    losses = [r["train/loss"] for r in _metrics(run) if "train/loss" in r]
    assert len(losses) == EPOCHS * 2, losses  # train.log_every=1
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    print(f"{step}: train loss {first:.4f} (first 3 steps) -> {last:.4f} (last 3)")
    assert last < first, losses
    if step.startswith("diffusion"):
        return  # the diffusion stage exports its last epoch (as for every variant)
    sel = done["selected"]  # the others export the epoch their validation metric selected
    assert sel is not None and sel["key"].startswith("val/") and 1 <= sel["epoch"] <= EPOCHS


@pytest.mark.timeout(900)
def test_the_evaluate_stage_scores_every_new_row(pipeline: dict) -> None:
    import math

    from physdiff.eval.bootstrap import LOWER_IS_BETTER
    from physdiff.eval.metrics import METRIC_NAMES
    from physdiff.eval.report import read_report

    cfg = pipeline["cfg"]
    rep = read_report(pipeline["runs"]["evaluate"])
    assert [r["variant"] for r in rep.table1] == ["ground_truth", *cfg.eval.variants]
    assert [r["method"] for r in rep.table3][:2] == ["nn_retrieval", "owens_retrieval"]
    assert [r["variant"] for r in rep.fig5b] == ["modal", "modal_residual", "ours", "predicted_mu"]
    for r in [*rep.table1[1:], *rep.fig5b, *rep.table3]:
        name = r.get("variant", r.get("method"))
        assert all(math.isfinite(r[m]) for m in METRIC_NAMES), name
        for m in LOWER_IS_BETTER:  # every metric with an interval (KID's std is its own spread)
            lo, hi = r["ci"][m]
            assert lo <= r[m] + 1e-9 <= hi + 2e-9, (name, m, lo, r[m], hi)
        assert r["spec_mse"] > 0, name  # none of them is the recording itself
    baselines = {p["baseline"] for p in rep.paired}
    assert {"convnet", "tts", "video_mfcc", "owens_retrieval", "predicted_mu"} <= baselines
    assert next(r for r in rep.table3 if r["method"] == "owens_retrieval")["seconds_per_clip"] > 0
    done = json.loads((pipeline["runs"]["evaluate"] / "DONE.json").read_text())
    for label in ("convnet", "tts", "owens", "mu_regressor", "diffusion-video_mfcc", "index-video_mfcc"):
        assert done["meta"]["runs"][label] == pipeline["runs"][label].name


def test_owens_retrieval_returns_training_recordings(pipeline: dict) -> None:
    from physdiff.artifacts import read_export
    from physdiff.data.sidetable import read_side_table
    from physdiff.inference.load import upstream_run
    from physdiff.models.owens import nearest_clips
    from physdiff.physics import peak_normalize
    from physdiff.stages.clips import load_split
    from physdiff.stages.rows import EvalInputs, make_owens_retrieval

    cfg = pipeline["cfg"]
    run = pipeline["runs"]["owens"]
    test, train = load_split(cfg, "test"), load_split(cfg, "train")
    ev = EvalInputs(cfg, test, {"owens": run, "video": upstream_run(cfg, "video")}, torch.device("cpu"))
    gen = make_owens_retrieval(ev)
    picked = ev.cache["owens_picked"]
    assert len(picked) == len(test.keys) and set(picked) <= set(train.keys)
    row = {k: i for i, k in enumerate(train.keys)}
    rec = peak_normalize(train.audio)  # (N_train, T)
    for j, key in enumerate(picked):  # each output is exactly the retrieved training clip's recording
        assert torch.equal(gen.audio[j], rec[row[key]]), key
    assert not set(picked) & set(test.keys)  # and never a test clip
    # The bank is the training recordings' cochleagrams: a training clip's own cochleagram retrieves itself.
    ex = read_export(run, "owens")
    bank = read_side_table(ex.table("train"))
    b = torch.from_numpy(bank.arrays["cochleagram"]).float()  # (N, C, S)
    keys, dist, _ = nearest_clips(b, b, list(bank.keys))
    assert keys == list(bank.keys) and float(dist.max()) < 1e-3
    # The exported test predictions are the network's output, not the truth (they differ from the true cochleagram)
    q = read_side_table(ex.table("test"))
    assert q.arrays["cochleagram_pred"].shape == q.arrays["cochleagram"].shape == (len(test.keys), *b.shape[1:])
    assert float(abs(q.arrays["cochleagram_pred"] - q.arrays["cochleagram"]).mean()) > 1e-3


def test_predicted_mu_is_the_regressors_output_in_place_of_the_retrieved_mu(pipeline: dict) -> None:
    from physdiff.artifacts import read_export
    from physdiff.data.sidetable import read_side_table
    from physdiff.inference.load import upstream_run
    from physdiff.models.mu_regressor import MuRegressor
    from physdiff.stages.clips import load_split

    cfg = pipeline["cfg"]
    ex = read_export(pipeline["runs"]["mu_regressor"], "mu_regressor")
    assert ex.manifest["diffusion_run"] == pipeline["runs"]["diffusion-ours"].name
    reg = MuRegressor.from_config(cfg.mu_regressor, nu_dim=ex.manifest["nu_dim"], mu_dim=ex.manifest["mu_dim"])
    reg.load_state_dict(ex.weights())
    reg.eval()
    test = load_split(cfg, "test")
    exported = torch.from_numpy(read_side_table(ex.table("test")).lookup(test.keys)["mu"])
    assert torch.allclose(reg.predict(test.nu), exported, atol=1e-6)
    # the target it learned: the "ours" run's exported mu of the training clips (the physics encoder's output)
    dex = read_export(pipeline["runs"]["diffusion-ours"], "diffusion")
    mu = read_side_table(dex.table("train"))
    vt = read_side_table(read_export(upstream_run(cfg, "video"), "video").table("train"))
    nu = torch.from_numpy(vt.lookup(list(mu.keys))["nu"]).float()
    with torch.no_grad():
        start = float(((MuRegressor.from_config(cfg.mu_regressor, nu_dim=nu.shape[1], mu_dim=reg.mu_dim)(nu)
                        - torch.from_numpy(mu.arrays["mu"])) ** 2).mean())
    fitted = float(((reg.predict(nu) - torch.from_numpy(mu.arrays["mu"])) ** 2).mean())
    assert fitted < start  # it moved towards the encoder's mu of the training clips


def test_video_mfcc_retrieves_the_mfcc_latent_of_a_training_recording(pipeline: dict) -> None:
    from physdiff.inference.conditioning import condition_inputs, condition_latent
    from physdiff.inference.synthesizer import Synthesizer
    from physdiff.stages.clips import load_split

    cfg = pipeline["cfg"]
    synth = Synthesizer.from_run(pipeline["runs"]["diffusion-video_mfcc"], with_video=False,
                                 index_dir=pipeline["runs"]["index-video_mfcc"])
    assert synth.variant == "video_mfcc" and synth.index.manifest["value_name"] == "mfcc_latent"
    train = load_split(cfg, "train")
    with torch.no_grad():
        latent = condition_latent(synth.diffusion, condition_inputs({"audio": train.audio}, "cpu"))  # (N, L)
    row = [train.keys.index(k) for k in synth.index.clip_keys]
    assert torch.allclose(synth.index.values.cpu(), latent[row], atol=1e-5)  # the index holds each recording's latent
    cond, keys, _ = synth.conditions(train.nu[:2])
    assert keys == train.keys[:2]  # a training clip's own nu retrieves its own MFCC latent
    assert cond.shape == (2, synth.diffusion.model.conditioner.cond_dim)


def test_every_system_is_a_pipeline_job_after_exactly_what_it_reads(debug_data: dict, capsys) -> None:
    from physdiff.config import resolve_config
    from physdiff.launch.cli import launch
    from physdiff.launch.pipeline import pipeline_steps

    steps = {s.name: s for s in pipeline_steps(resolve_config("paper"))}
    assert steps["convnet"].after == ("video",) and steps["tts"].after == ("video",)
    assert steps["owens"].after == ("shards",)  # it decodes the frames itself
    assert steps["mu_regressor"].after == ("video", "diffusion-ours")
    assert steps["mu_regressor"].overrides == (("diffusion.variant", "ours"),)
    assert steps["index-video_mfcc"].after == ("diffusion-video_mfcc",)
    assert {"convnet", "tts", "owens", "mu_regressor", "index-video_mfcc"} <= set(steps["evaluate"].after)
    feats = {s.name: s for s in pipeline_steps(resolve_config("paper", ["owens.input=features"]))}
    assert feats["owens"].after == ("video",)
    # the SLURM chain of the dry run: every system is its own job, dependent on what it reads
    launch(["--stage", "all", "--dry-run", "--gpus", "8", "--preset", "paper", *overrides(debug_data)])
    out = capsys.readouterr().out
    for name, after in (("convnet", "video"), ("tts", "video"), ("owens", "shards"),
                        ("mu_regressor", "video, diffusion-ours"), ("diffusion-video_mfcc", "video")):
        assert f"## {name}: stage " in out and f"after: {after};" in out.split(f"## {name}: stage ")[1].split("\n")[0]
    assert "afterok" in out or "dependency" in out


def test_mu_regressor_refuses_a_variant_without_mu_and_names_missing_runs(debug_data: dict, tmp_path: Path) -> None:
    from physdiff.configlib import ConfigError
    from physdiff.errors import DataError
    from physdiff.stages import train_stage

    with pytest.raises(ConfigError, match="diffusion.variant=ours"):
        train_stage(_cfg(debug_data, ["diffusion.variant=video"]), "mu_regressor", cpu=True)
    with pytest.raises(DataError, match="not finished"):  # no "ours" run of this width: named, nothing trained
        train_stage(_cfg(debug_data, ["diffusion.width=16"]), "mu_regressor", cpu=True)


def test_a_clips_mfcc_latent_does_not_depend_on_its_batch() -> None:
    """torchaudio's MFCC floors 80 dB below the loudest item of the dimension before (mels, frames): on a (B, T)
    batch that was the whole batch, so the index's latents differed from the ones seen in training."""
    from physdiff.config import resolve_config
    from physdiff.models.mfcc_encoder import MFCCEncoder

    cfg = resolve_config("debug")
    enc = MFCCEncoder.from_config(cfg.mfcc, cfg.audio).eval()
    g = torch.Generator().manual_seed(0)
    t = torch.arange(cfg.audio.num_samples) / cfg.audio.sample_rate
    audio = torch.randn(3, t.numel(), generator=g) * torch.exp(-t * torch.tensor([[5.0], [40.0], [200.0]]))  # (3, T)
    with torch.no_grad():
        together = enc.features(audio)  # (3, n_mfcc, N)
        alone = torch.cat([enc.features(audio[i : i + 1]) for i in range(3)])
    assert torch.allclose(together, alone, atol=1e-4)
