"""Is the material recognisable in spectrograms the diffusion model generates from ground-truth (mu, nu)?

    python bench/diffusion_quality.py                          # tiny world (48 videos), CPU, ~10-20 min quiet
    python bench/diffusion_quality.py --reuse-preset tiny --data-root data   # score the README main job's model
    python bench/diffusion_quality.py --reuse-preset tiny --data-root data/quality world.videos=60 diffusion.epochs=30
    python bench/diffusion_quality.py --videos 24 --diffusion-epochs 10 --variants ours,video
    python bench/diffusion_quality.py --data-root /tmp/dq --out dq.json

Pipeline, all real stages on a generated world (``tiny`` preset, ``world.videos`` raised so the test
split has enough clips per material for an accuracy to mean something):

1. synthetic world -> shards (``physdiff.world``, ``physdiff.data.build``);
2. prior stage (w, gamma), video stage (nu), each for a few epochs (``--prior-epochs``, ``--video-epochs``);
3. the diffusion stage per variant (``--variants``, default ``ours``), ``--diffusion-epochs`` epochs;
4. the classifier stage's spectrogram material classifier (``physdiff.stages.classifier``:
   the ``tiny`` backbone and augmentation of ``cfg.eval``, seeded by ``cfg.seed``) trained on the *real*
   training spectrograms, or reused from ``<data>/runs/classifier-<hash>``;
5. per split of ``--splits`` (``--max-clips`` evenly spaced clips each), one spectrogram sampled (DDIM,
   ``--steps``, eta 0) with the clip's ground-truth condition (its own priors -> mu, its own nu), and once
   more with the conditions shuffled among the clips (a control: if the condition drives the material,
   the classifier then follows the shuffled clip's label, not the clip's own).

Why two splits: the test split is the held-out question (its real-clip row is the classifier's
ceiling on recordings no model saw); the training split checks that the model renders the conditions
it was trained on. On both, "recognisable" means: generated from a clip's (mu, nu), the spectrogram is
classified about as well as the real clip, and with shuffled conditions the prediction follows the
condition's label rather than the clip's own.

Reported per split: classifier accuracy and balanced accuracy on the real spectrograms (the ceiling),
on the generated ones, and on the shuffled-condition ones (against the shuffled and the own labels),
with chance (majority share and 1 / classes present). Prints a table; ``--out`` writes JSON.
Stage runs are cached in the data folder by config hash, so a rerun only redoes what changed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import physdiff  # noqa: F401  (first: sets OMP_WAIT_POLICY before torch loads OpenMP)
import torch

REPO = Path(__file__).resolve().parents[1]


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def build_data(args: argparse.Namespace, base: list[str]) -> Any:
    from physdiff.config import resolve_config
    from physdiff.data.build import build_shards
    from physdiff.data.reader import load_manifest
    from physdiff.errors import DataError
    from physdiff.identity import shards_dir, world_dir
    from physdiff.world import generate_world

    cfg = resolve_config("tiny", base)
    try:
        load_manifest(shards_dir(cfg), "test")
        _log(f"shards reused: {shards_dir(cfg)}")
        return cfg
    except DataError:
        pass
    t = time.time()
    generate_world(world_dir(cfg), cfg.world, progress=False)
    s = build_shards(world_dir(cfg), shards_dir(cfg), cfg, workers=2)
    _log(f"world + shards in {time.time() - t:.0f} s: {s['splits']['train']['written']} train, "
         f"{s['splits']['test']['written']} test clips")
    return cfg


def stage(name: str, preset: str, overrides: list[str]) -> Path:
    from physdiff.config import resolve_config
    from physdiff.stages import train_stage

    t = time.time()
    r = train_stage(resolve_config(preset, overrides), name)
    _log(f"{name}: {r.status} at step {r.step} in {time.time() - t:.0f} s ({r.run_dir})")
    metrics = {k: round(v, 4) for k, v in r.metrics.items() if k.startswith("val/") and not k.startswith("val/denoise_loss_t")}
    _log(f"{name} metrics: {metrics}")
    return r.run_dir


def collect(recipe: Any, cfg: Any, split: str) -> dict[str, Any]:
    """Every clip of ``split``: x_0 spectrograms, conditioner inputs (GT priors, nu, ...), labels."""
    xs, labels, inputs = [], [], []
    for batch in recipe.loader(cfg, split, "eval"):
        x0, inp = recipe.inputs(batch, cfg, torch.device("cpu"))
        xs.append(x0)
        labels.append(torch.as_tensor(batch["material"]))
        inputs.append(inp)
    return {"x0": torch.cat(xs), "label": torch.cat(labels),
            "inputs": {k: torch.cat([i[k] for i in inputs]) for k in inputs[0]}}


def subset(clips: dict[str, Any], n: int) -> dict[str, Any]:
    """At most ``n`` clips, evenly spaced over the split (every material and video, deterministic)."""
    total = len(clips["label"])
    if n <= 0 or n >= total:
        return clips
    idx = torch.linspace(0, total - 1, n).round().long()
    return {"x0": clips["x0"][idx], "label": clips["label"][idx], "inputs": {k: v[idx] for k, v in clips["inputs"].items()}}


def score_split(model: Any, clf: torch.nn.Module, clips: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Sample every clip with its own GT condition and with a shuffled one; score both and the real clips."""
    n = len(clips["label"])
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(args.seed))
    shuffled = {k: v[perm] for k, v in clips["inputs"].items()}
    t = time.time()
    with torch.no_grad():
        from physdiff.inference.config import SamplingConfig
        from physdiff.inference.sampling import sample_spectrograms

        opts = SamplingConfig(sampler="ddim", steps=args.steps, eta=0.0, guidance_scale=args.guidance, seed=args.seed + 1)
        enc = model.conditioner.encode
        gen = sample_spectrograms(model, enc(clips["inputs"]), opts)  # (n, 1, F, N)
        gen_sh = sample_spectrograms(model, enc(shuffled), opts)  # (n, 1, F, N): the same noise
    _log(f"sampled {2 * n} spectrograms in {time.time() - t:.0f} s")
    return {"real": scores(clf, clips["x0"], clips["label"]),
            "generated": scores(clf, gen, clips["label"]),
            "shuffled_vs_condition_label": scores(clf, gen_sh, clips["label"][perm]),
            "shuffled_vs_own_label": scores(clf, gen_sh, clips["label"]),
            "spec_mse": float(((gen - clips["x0"]) ** 2).mean())}


@torch.no_grad()
def scores(clf: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    from physdiff.eval.metrics import classification_metrics

    logits = torch.cat([clf(x[i : i + 64])[0] for i in range(0, len(x), 64)])  # (N, K)
    m = classification_metrics(logits, y)
    return {k: float(v) for k, v in m.items() if k != "confusion"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", default=None, help="default: <data folder>/bench-diffusion-quality")
    ap.add_argument("--videos", type=int, default=48, help="world.videos of the tiny world (tiny default: 12)")
    ap.add_argument("--prior-epochs", type=int, default=3)
    ap.add_argument("--video-epochs", type=int, default=6)
    ap.add_argument("--diffusion-epochs", type=int, default=30)
    ap.add_argument("--variants", default="ours", help="comma-separated diffusion variants")
    ap.add_argument("--steps", type=int, default=25, help="DDIM steps per sample")
    ap.add_argument("--guidance", type=float, default=1.0)
    ap.add_argument("--splits", default="test,train",
                    help="score GT-conditioned samples of these splits: 'test' (held-out recordings) and 'train' "
                         "(the conditions the model was trained on)")
    ap.add_argument("--max-clips", type=int, default=80, help="clips per split (evenly spaced; 0 = all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--reuse-preset", default=None,
                    help="score the finished 'ours' diffusion run of this preset in --data-root (e.g. the README main "
                         "job's: --reuse-preset tiny --data-root data) instead of training new stage runs")
    ap.add_argument("overrides", nargs="*", help="with --reuse-preset: the key=value overrides of the run to score "
                                                 "(e.g. those bench/quality.py passes)")
    args = ap.parse_args()

    from physdiff.paths import data_root
    from physdiff.inference.load import load_diffusion
    from physdiff.stages.diffusion import DiffusionRecipe

    root = Path(args.data_root or data_root() / "bench-diffusion-quality").resolve()
    common = [f"paths.data_root={root}", f"world.videos={args.videos}", "tracking.enabled=false",
              "train.progress=false", "tracking.audio_examples=2"]
    t0 = time.time()
    from physdiff.config import resolve_config

    if args.reuse_preset:
        from physdiff.stages import stage_run_dir

        main_cfg = resolve_config(args.reuse_preset, [*args.overrides, f"paths.data_root={root}"])
        reused = stage_run_dir(main_cfg, "diffusion")
        if not (reused / "DONE.json").exists():
            raise SystemExit(f"error: no finished diffusion run at {reused}; run the main job first")
        args.variants, args.videos = "ours", main_cfg.world.videos
    else:
        build_data(args, common)
        prior_run = stage("prior", "tiny", [*common, f"train.epochs={args.prior_epochs}"])
        video_run = stage("video", "tiny", [*common, f"train.epochs={args.video_epochs}"])
    results: dict[str, Any] = {"videos": args.videos, "steps": args.steps, "guidance": args.guidance, "variants": {}}
    clf = None
    for variant in args.variants.split(","):
        # Evaluate (held-out loss + media) only after the last epoch: this bench measures the samples below.
        over = [] if args.reuse_preset else [*common, f"train.epochs={args.diffusion_epochs}", f"train.eval_every={args.diffusion_epochs}",
                f"diffusion.variant={variant}",
                f"diffusion.prior_run={prior_run}", f"diffusion.video_run={video_run}"]
        run = reused if args.reuse_preset else stage("diffusion", "tiny", over)
        loaded = load_diffusion(run)
        recipe = DiffusionRecipe()
        recipe.setup(loaded.cfg, 0, 1)
        if clf is None:
            from physdiff.inference.load import load_classifier
            from physdiff.stages import train_stage

            t = time.time()
            # the classifier stage's run of the current config (trained now when missing; the main job's when reused)
            clf_cfg = main_cfg if args.reuse_preset else resolve_config("tiny", common)
            clf, info = load_classifier(train_stage(clf_cfg, "classifier").run_dir)
            _log(f"classifier: {info.get('train_clips', '?')} real training spectrograms, {time.time() - t:.0f} s")
            results["train_clips"] = info.get("train_clips")
        per_split = {}
        for split in args.splits.split(","):
            clips = subset(collect(recipe, loaded.cfg, split), args.max_clips)
            per_split[split] = score_split(loaded.model, clf, clips, args)
            results.setdefault("real", {})[split] = per_split[split].pop("real")
            results.setdefault("clips", {})[split] = len(clips["label"])
        results["variants"][variant] = {"run_dir": str(run), **per_split}
    results["seconds"] = round(time.time() - t0, 1)

    print(f"\ndiffusion quality, tiny world ({args.videos} videos, {results['train_clips']} training clips), "
          f"DDIM-{args.steps}, guidance {args.guidance}")
    print(f"{'spectrograms':52s} {'acc':>6s} {'bal.acc':>8s} {'chance':>7s} {'bal.ch.':>7s}")
    for split, real in results["real"].items():
        ch = f"{real['chance_acc']:7.3f} {real['chance_balanced_acc']:7.3f}"
        label = f"real {split} clips ({results['clips'][split]})"
        print(f"{label:52s} {real['acc']:6.3f} {real['balanced_acc']:8.3f} {ch}")
        for v, r in results["variants"].items():
            rows = (("GT condition", r[split]["generated"]),
                    ("shuffled cond. vs its label", r[split]["shuffled_vs_condition_label"]),
                    ("shuffled cond. vs clip label", r[split]["shuffled_vs_own_label"]))
            for name, sc in rows:
                print(f"{f'{v}, {split}: {name}':52s} {sc['acc']:6.3f} {sc['balanced_acc']:8.3f}")
            print(f"{f'{v}, {split}: spectrogram MSE vs real':52s} {r[split]['spec_mse']:6.3f}")
    print(f"total {results['seconds']:.0f} s")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    sys.exit(main())
