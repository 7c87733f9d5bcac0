"""The evaluate stage (paper Sec. 4, Tables 1 and 3): every model variant scored by one classifier on the test split.

1. **Metric classifier** (:mod:`physdiff.models.spec_classifier`): a material classifier trained on the
   training split's real spectrograms (the diffusion target, normalised log-magnitude) or, with
   ``eval.classifier_world_videos`` > 0 (the ``tiny`` preset), on an independent, larger generated world
   of the same distribution (:func:`classifier_shards`), saved as
   ``<data>/runs/classifier-<hash>/classifier.safetensors`` (+ ``classifier.json``) and reused by every later
   evaluation of the same data and classifier settings (``eval.classifier_pretrained`` loads a given one).
2. **Test clips**: audio, material label and the video stage's exported nu / logits of every test clip.
3. **Variants** (``eval.variants``), all through the same code:
   - ``nn_retrieval`` (Table 3 baseline): the nearest training clip by visual features (Euclidean on nu)
     *is* the answer: its recorded audio;
   - ``video``, ``video_label``, ``video_spec``, ``ours``: the diffusion run of that variant (trained here
     first when missing and ``eval.train_missing``), conditioned on the test nu and the latent retrieved
     from its index (:mod:`physdiff.stages.index`), sampled with ``eval.sampler`` / ``eval.sample_steps``
     (all variants share the noise seed), then Griffin-Lim.
   A ``ground_truth`` row scores the recordings themselves: the classifier's ceiling.
4. **Metrics** (:mod:`physdiff.eval.metrics`): FID, KID (mean ± std), KL(p_gt || p_gen), accuracy, balanced
   accuracy, spectrogram MSE, MR-STFT distance.
5. **Table 3**: NN retrieval against "ours" with DDIM at each of ``eval.ddim_steps`` (eta 0) and ancestral
   DDPM over all T steps, with seconds per clip.
6. ``report.md`` / ``report.json`` / ``table1.csv`` / ``table3.csv`` in ``<data>/runs/evaluate-<hash>``, logged to
   MLflow (an ``evaluate`` run in the same experiment).

    python cluster/launch.py --stage evaluate --local --preset tiny
    python -m physdiff.stages.evaluate --preset tiny eval.variants='["nn_retrieval","ours"]'
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from physdiff.errors import DataError

DIFFUSION_VARIANTS = ("video", "video_label", "video_spec", "ours")
EVAL_SECTIONS = ("seed", "audio", "physics", "world", "shards", "loader", "train", "prior", "video", "diffusion", "eval")
CLASSIFIER_FORMAT = "physdiff-spec-classifier/1"


# ----------------------------------------------------------------------------- data


@dataclass
class SplitClips:
    """One split's clips in shard order: keys, labels (N,), audio (N, T), and the video export's nu / logits."""

    keys: list[str]
    labels: Tensor
    audio: Tensor
    nu: Tensor
    logits: Tensor


def video_tables(cfg: Any) -> dict[str, Path]:
    from physdiff.stages.diffusion import upstream_exports

    return upstream_exports(cfg, "video")


def load_split(cfg: Any, split: str, keys: set[str] | None = None) -> SplitClips:
    """Clips of ``split`` (only ``keys`` when given) with the video export joined by key."""
    from physdiff.data.reader import make_loader
    from physdiff.stages import shards_dir

    tables = video_tables(cfg)
    if split not in tables:
        raise DataError(f"the video export has no '{split}' split")
    ks, labels, audio, nu, logits = [], [], [], [], []
    for b in make_loader(shards_dir(cfg), split, batch_size=64, mode="eval", side_tables={"video": tables[split]}):
        for j, k in enumerate(b["key"]):
            if keys is not None and k not in keys:
                continue
            ks.append(str(k))
            labels.append(b["material"][j])
            audio.append(b["audio"][j])
            nu.append(b["video/nu"][j])
            logits.append(b["video/logits"][j])
    if not ks:
        raise DataError(f"no clips in the {split} split under {shards_dir(cfg)}")
    return SplitClips(ks, torch.stack(labels).long(), torch.stack(audio).float(), torch.stack(nu).float(),
                      torch.stack(logits).float())


def training_nu(cfg: Any) -> tuple[list[str], Tensor]:
    """(keys, nu (N, D)) of every training clip, from the video export."""
    from physdiff.data.sidetable import read_side_table

    t = read_side_table(video_tables(cfg)["train"])
    return list(t.keys), torch.from_numpy(t.arrays["nu"]).float()


# ----------------------------------------------------------------------------- the metric classifier


def classifier_dir(cfg: Any) -> Path:
    """``<data>/runs/classifier-<hash>``: named by the data and the classifier's own settings only."""
    from physdiff.configlib import config_hash

    e = cfg.eval
    # every classifier_* setting (a new one joins the hash by itself) except the path of given weights
    own = {f.name: getattr(e, f.name) for f in dataclasses.fields(e)
           if f.name.startswith("classifier_") and f.name != "classifier_pretrained"}
    data = config_hash(cfg, sections=("audio", "physics", "world", "shards"))
    h = hashlib.sha256(json.dumps({"data": data, "classifier": own}, sort_keys=True).encode()).hexdigest()[:10]
    return cfg.paths.root() / "runs" / f"classifier-{h}"


def classifier_shards(cfg: Any, progress: bool = True) -> Path:
    """The shard root whose ``train`` split trains the metric classifier.

    ``eval.classifier_world_videos`` = 0: this config's own shards (the clips the models were trained on).
    N > 0: an independent generated world of N videos, drawn with ``eval.classifier_world_seed`` instead
    of ``seed`` (so no object, room or recording is shared with the evaluated test split) and otherwise
    this config's world, audio and shard settings, built once into ``<data>/world|shards/<hash>``.
    Why: a classifier trained on the few hundred training clips of a small world learns those
    recordings, not materials, and scores the real test clips near chance; a metric built on it ranks
    variants by closeness to the training audio (docs/deviations.md). Only meaningful when the data
    *is* a generated world: keep 0 on real datasets.
    """
    import copy

    from physdiff.configlib import apply_overrides
    from physdiff.stages import shards_dir, world_dir

    e = cfg.eval
    if e.classifier_world_videos <= 0:
        return shards_dir(cfg)
    procs = min(4, os.cpu_count() or 1)  # worker counts are non-semantic: the bytes do not depend on them
    wcfg = apply_overrides(copy.deepcopy(cfg), {"world.seed": e.classifier_world_seed, "world.videos": e.classifier_world_videos,
                                                "train.shards": "", "world.workers": procs, "shards.workers": procs})
    world, shards = world_dir(wcfg), shards_dir(wcfg)
    if not (shards / "summary.json").is_file():
        from physdiff.data.build import build_shards
        from physdiff.world import generate_world

        t0 = time.time()
        if not ((world / "train.txt").is_file() and (world / "test.txt").is_file()):
            print(f"[evaluate] classifier world: generating {e.classifier_world_videos} videos (seed "
                  f"{e.classifier_world_seed}) -> {world}", flush=True)
            generate_world(world, wcfg.world, overwrite=True, progress=progress)
        build_shards(world, shards, wcfg, workers=procs)  # resumes a partial build
        print(f"[evaluate] classifier world: shards in {time.time() - t0:.0f} s -> {shards}", flush=True)
    return shards


def train_classifier(cfg: Any, device: torch.device, progress: bool = True) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Train (or load) the spectrogram material classifier on real training spectrograms (see
    :func:`classifier_shards` for which).

    Training spectrograms are augmented (:mod:`physdiff.eval.spec_augment`, ``eval.classifier_aug_*``)
    so the classifier learns material rather than the training videos' rooms and objects.
    """
    from dataclasses import asdict

    from safetensors.torch import load_file, save_file

    from physdiff.data.labels import GREATEST_HITS_MATERIALS
    from physdiff.data.reader import load_manifest, make_loader
    from physdiff.eval.spec_augment import augment_spectrogram, settings_from_eval
    from physdiff.models.spec_classifier import build_spec_classifier
    from physdiff.physics import spectrogram_target

    e = cfg.eval
    k = len(GREATEST_HITS_MATERIALS)
    model = build_spec_classifier(k, e)
    if e.classifier_pretrained:
        model.load_pretrained(e.classifier_pretrained)
        return model.to(device).eval(), {"source": e.classifier_pretrained}
    out = classifier_dir(cfg)
    wpath, mpath = out / "classifier.safetensors", out / "classifier.json"
    if wpath.is_file() and mpath.is_file():
        model.load_state_dict(load_file(str(wpath)))
        info = json.loads(mpath.read_text())
        print(f"[evaluate] classifier: reusing {wpath}", flush=True)
        return model.to(device).eval(), info
    root = classifier_shards(cfg, progress)
    n = int(load_manifest(root, "train")["num_samples"])
    bs = e.classifier_batch_size
    batches = max(1, math.ceil(n / bs))
    torch.manual_seed(cfg.seed)
    aug = settings_from_eval(e, cfg.audio)
    gen = torch.Generator().manual_seed(cfg.seed)  # the augmentation's draws (CPU, moved to the device)
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=e.classifier_lr, weight_decay=e.classifier_weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, e.classifier_epochs * batches))
    t0 = time.time()
    epochs: Any = range(e.classifier_epochs)
    if progress:
        from tqdm.auto import tqdm

        epochs = tqdm(epochs, desc="classifier", unit="epoch")
    last = {}
    for ep in epochs:
        correct = seen = 0
        tot = 0.0
        for b in make_loader(root, "train", batch_size=bs, mode="train", seed=cfg.seed, epoch=ep,
                             batches_per_epoch=batches, shuffle_buffer=cfg.loader.shuffle_buffer):
            x = spectrogram_target(b["audio"].float().to(device), cfg.audio)  # (B, 1, F, N)
            x = augment_spectrogram(x, aug, gen)  # (B, 1, F, N); identity when every classifier_aug_* is 0
            y = b["material"].long().to(device)  # (B,)
            logits, _ = model(x)  # (B, K)
            loss = torch.nn.functional.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss.detach()) * y.numel()
            correct += int((logits.argmax(-1) == y).sum())
            seen += y.numel()
        last = {"train_loss": tot / max(seen, 1), "train_acc": correct / max(seen, 1)}  # on augmented clips
    model.eval()
    info = {"format": CLASSIFIER_FORMAT, "backbone": e.classifier_backbone, "num_classes": k,
            "classes": list(GREATEST_HITS_MATERIALS), "train_clips": n, "epochs": e.classifier_epochs,
            "shards": str(root),
            "augmentation": asdict(aug),
            "seconds": time.time() - t0, **last}
    out.mkdir(parents=True, exist_ok=True)
    save_file({kk: v.detach().cpu().contiguous() for kk, v in model.state_dict().items()}, str(wpath) + ".tmp")
    Path(str(wpath) + ".tmp").replace(wpath)
    mpath.write_text(json.dumps(info, indent=2) + "\n")
    print(f"[evaluate] classifier trained: {wpath} (train acc {last.get('train_acc', 0):.3f})", flush=True)
    return model, info


# ----------------------------------------------------------------------------- variants


def variant_config(cfg: Any, variant: str) -> Any:
    from physdiff.config import Config, apply_overrides, from_dict

    c = from_dict(Config, cfg.to_dict())
    apply_overrides(c, {"diffusion.variant": variant})
    return c


def ensure_variant_run(cfg: Any, variant: str) -> Path:
    """The finished diffusion run of ``variant``; trained now (in this process) when missing and allowed."""
    from physdiff.stages import stage_run_dir

    vcfg = variant_config(cfg, variant)
    run = stage_run_dir(vcfg, "diffusion")
    if (run / "DONE.json").is_file():
        return run
    if not cfg.eval.train_missing:
        raise DataError(f"no finished diffusion run for variant '{variant}' ({run}); train it with "
                        f"python cluster/launch.py --stage diffusion diffusion.variant={variant} ... "
                        f"(or allow eval.train_missing=true)")
    from physdiff.training.run import train_stage

    print(f"[evaluate] training the missing diffusion variant '{variant}' -> {run}", flush=True)
    res = train_stage(vcfg, "diffusion")
    if res.status not in ("finished", "skipped"):
        raise DataError(f"training diffusion variant '{variant}' ended with status {res.status}; relaunch to resume")
    return run


@dataclass
class Generated:
    specs: Tensor  # (N, 1, F, N_frames) normalised log-magnitude
    audio: Tensor  # (N, T) peak-normalised
    seconds_per_clip: float


def nn_retrieval(cfg: Any, test: SplitClips) -> Generated:
    """Table 3's baseline: each test clip gets the recorded audio of its nearest training clip by nu."""
    from physdiff.physics import peak_normalize
    from physdiff.retrieval import query
    from physdiff.physics import spectrogram_target

    t0 = time.time()
    keys, nu_train = training_nu(cfg)
    _d, idx = query(nu_train, test.nu, k=1, chunk_size=cfg.eval.retrieval_chunk_size,
                    query_batch=cfg.eval.retrieval_query_batch)  # (B, 1)
    picked = [keys[i] for i in idx[:, 0].tolist()]
    train = load_split(cfg, "train", set(picked))
    row = {k: i for i, k in enumerate(train.keys)}
    audio = train.audio[[row[k] for k in picked]]  # (B, T)
    specs = spectrogram_target(audio, cfg.audio)  # (B, 1, F, N)
    return Generated(specs, peak_normalize(audio), (time.time() - t0) / len(picked))


def diffusion_variant(run: Path, test: SplitClips, opts: Any, device: torch.device, progress: bool) -> Generated:
    """Sample every test clip with a diffusion run: test nu -> retrieved latent -> sampler -> Griffin-Lim."""
    from physdiff.stages.generate import Synthesizer

    synth = Synthesizer.from_run(run, device, with_video=False)
    t0 = time.time()
    cond, _keys, _dist = synth.conditions(test.nu, test.logits)  # (N, C)
    specs = synth.sample(cond, opts, progress=progress)  # (N, 1, F, N)
    audio = synth.to_audio(specs)  # (N, T)
    return Generated(specs, audio, (time.time() - t0) / specs.shape[0])


# ----------------------------------------------------------------------------- the stage


def evaluate_dir(cfg: Any) -> Path:
    from physdiff.configlib import config_hash

    return cfg.paths.root() / "runs" / f"evaluate-{config_hash(cfg, sections=EVAL_SECTIONS)}"


def run_evaluate(cfg: Any, *, out: str | Path | None = None, device: str | None = None,
                 progress: bool = True, force: bool = False) -> dict[str, Any]:
    """The ``evaluate`` task stage: Tables 1 and 3 on the test split -> report files + MLflow."""
    from physdiff.configlib import config_hash
    from physdiff.eval.metrics import classifier_outputs, compute_metrics
    from physdiff.eval.report import log_report_to_mlflow, table1_row, table3_row, write_report
    from physdiff.physics import peak_normalize
    from physdiff.physics import spectrogram_target
    from physdiff.stages.generate import SampleOptions
    from physdiff.data.labels import GREATEST_HITS_MATERIALS

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    e = cfg.eval
    run_dir = Path(out) if out else evaluate_dir(cfg)
    if (run_dir / "DONE.json").is_file() and not force:
        print(f"[evaluate] complete: {run_dir / 'report.md'}", flush=True)
        return json.loads((run_dir / "DONE.json").read_text())
    unknown = [v for v in e.variants if v not in ("nn_retrieval",) + DIFFUSION_VARIANTS]
    if unknown:
        raise DataError(f"unknown eval.variants {unknown}; choose from nn_retrieval, {', '.join(DIFFUSION_VARIANTS)}")
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg.write_json(run_dir / "config.json")
    t_start = time.time()

    runs = {v: ensure_variant_run(cfg, v) for v in e.variants if v in DIFFUSION_VARIANTS}
    clf, clf_info = train_classifier(cfg, dev, progress)
    test = load_split(cfg, "test")
    if len(test.keys) < 2:
        raise DataError(f"the test split has {len(test.keys)} clip(s); FID/KID need at least 2")
    k = len(GREATEST_HITS_MATERIALS)
    gt_specs = spectrogram_target(test.audio, cfg.audio)  # (N, 1, F, N)
    gt_audio = peak_normalize(test.audio)  # (N, T)
    gt_out = classifier_outputs(clf, gt_specs, e.batch_size, dev)
    kid_kw = dict(kid_subsets=e.kid_subsets, kid_subset_size=e.kid_subset_size, kid_degree=e.kid_degree, seed=e.metric_seed)

    def score(gen: Generated) -> dict[str, float]:
        out = classifier_outputs(clf, gen.specs, e.batch_size, dev)
        return compute_metrics(out, gt_out, test.labels, k, gen.specs, gt_specs, gen.audio, gt_audio, **kid_kw)

    print(f"[evaluate] {len(test.keys)} test clips; variants: {', '.join(e.variants)}", flush=True)
    table1, table3 = [], []
    table1.append(table1_row("ground_truth", score(Generated(gt_specs, gt_audio, 0.0))))
    cache: dict[tuple, tuple[dict[str, float], float]] = {}
    t1_opts = SampleOptions.for_evaluation(cfg)
    for v in e.variants:
        t0 = time.time()
        if v == "nn_retrieval":
            gen = nn_retrieval(cfg, test)
            m = score(gen)
            table3.append(table3_row("nn_retrieval", "retrieval", None, m, gen.seconds_per_clip))
        else:
            gen = diffusion_variant(runs[v], test, t1_opts, dev, progress)
            m = score(gen)
            cache[(v, t1_opts.sampler, t1_opts.steps, t1_opts.eta)] = (m, gen.seconds_per_clip)
        table1.append(table1_row(v, m))
        print(f"[evaluate] {v}: " + ", ".join(f"{n} {x:.4g}" for n, x in m.items()) + f" ({time.time() - t0:.0f} s)",
              flush=True)

    if "ours" in runs:  # Table 3: sampler steps (DDIM, eta 0) against ancestral DDPM over all T
        from physdiff.stages.diffusion import load_diffusion

        T = int(load_diffusion(runs["ours"]).model.schedule.num_timesteps)
        settings = [("ddim", s, 0.0) for s in e.ddim_steps if s <= T] + ([("ddpm", None, 1.0)] if e.table3_ddpm else [])
        for sampler, steps, eta in settings:
            key = ("ours", sampler, steps, eta)
            if key not in cache:
                opts = SampleOptions.for_evaluation(cfg, sampler=sampler, steps=steps or 0, eta=eta)
                gen = diffusion_variant(runs["ours"], test, opts, dev, progress)
                cache[key] = (score(gen), gen.seconds_per_clip)
            m, spc = cache[key]
            table3.append(table3_row("ours", sampler, steps or T, m, spc))
            print(f"[evaluate] ours {sampler.upper()}-{steps or T}: fid {m['fid']:.4g}, acc {m['acc']:.3f} "
                  f"({spc:.3f} s/clip)", flush=True)

    meta = {"preset": cfg.preset, "config_hash": config_hash(cfg, sections=EVAL_SECTIONS),
            "test_clips": len(test.keys), "table1_sampler": f"{t1_opts.sampler}-{t1_opts.steps or 'T'} eta {t1_opts.eta:g} guidance {t1_opts.guidance_scale:g}",
            "classifier": clf_info.get("backbone", e.classifier_backbone),
            "classifier_train_acc": clf_info.get("train_acc"), "device": str(dev),
            "diffusion_runs": {v: str(r) for v, r in runs.items()}, "seconds": round(time.time() - t_start, 1)}
    paths = write_report(run_dir, table1, table3, meta)
    mlflow_id = None
    if cfg.tracking.enabled:
        from physdiff.training.tracking import Tracker, default_tracking_uri

        tracker = Tracker(cfg, run_dir, "evaluate", meta["config_hash"])
        mlflow_id = tracker.start()
        if mlflow_id:
            log_report_to_mlflow(run_dir, mlflow_id, default_tracking_uri(cfg))
            tracker.finish("FINISHED")
    done = {"stage": "evaluate", "run_dir": str(run_dir), "report": {k2: str(p) for k2, p in paths.items()},
            "mlflow_run_id": mlflow_id, "table1": table1, "table3": table3, "meta": meta}
    (run_dir / "DONE.json").write_text(json.dumps(done, indent=2, default=str, allow_nan=True) + "\n")
    print(paths["md"].read_text(), flush=True)
    print(f"[evaluate] report: {paths['md']}", flush=True)
    return done


def main(argv: list[str] | None = None) -> int:
    import argparse

    from physdiff.config import add_config_args, config_from_args

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None, help="report folder (default: <data>/runs/evaluate-<hash>)")
    ap.add_argument("--force", action="store_true", help="re-evaluate even when a report exists")
    add_config_args(ap)
    args = ap.parse_args(argv)
    run_evaluate(config_from_args(args), out=args.out, force=args.force)
    return 0


if __name__ == "__main__":
    from physdiff.errors import run_cli

    run_cli(lambda: main(sys.argv[1:]))
