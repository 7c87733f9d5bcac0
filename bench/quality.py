"""The quality benchmark: Table 1 / Table 3 analogues and the Fig. 5a sweep on a larger generated world.

Runs the real pipeline (``cluster/launch.py --stage all --local``) on the ``tiny`` preset with a
larger world and longer diffusion training than the README's main job and every Table 1 variant,
then scores material recognisability of samples from ground-truth conditions
(``bench/diffusion_quality.py --reuse-preset``) and runs the residual-dims sweep
(``sweeps/residual_dims.py``), and writes ``docs/results.md`` with the command, the seeds and every
table. Sized for ≤ 60 minutes on a 2-core CPU::

    python bench/quality.py                              # writes docs/results.md
    python bench/quality.py --videos 60 --diffusion-epochs 40 --seed 1 --out /tmp/results.md
    python bench/quality.py --skip-sweep                 # Table 1 / Table 3 only
    python bench/quality.py --ddpm                       # + Table 3's ancestral DDPM-1000 row (~9 s per test clip on 2 cores)

Everything lives under ``--data-root`` (default ``data/quality``), so a rerun skips the stages that
are already complete for the same config (the run folders are named by config hashes).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _run(cmd: list[str], env: dict[str, str], log: Path) -> None:
    print("$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    with log.open("a") as fh:
        rc = subprocess.call(cmd, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT)
    if rc != 0:
        raise SystemExit(f"error: {cmd[1]} failed (exit {rc}); see {log}")


def _pipeline_config(common: list[str]):
    """The resolved config of the pipeline run, from the same overrides: where its shards and report are."""
    from physdiff.config import resolve_config

    return resolve_config("tiny", [c for c in common if "=" in c])


class Timings:
    """Wall seconds per phase in ``<data-root>/timings.json``. A rerun finds the finished stages cached, so a
    phase that took under a minute keeps the time of the run that did its work (flagged in the report)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data = json.loads(path.read_text()) if path.is_file() else {}
        self.cached: set[str] = set()

    def record(self, phase: str, seconds: float) -> None:
        if seconds < 60 and phase in self.data:
            self.cached.add(phase)
            return
        self.data[phase] = round(seconds, 1)
        self.path.write_text(json.dumps(self.data, indent=2) + "\n")

    def text(self, phase: str) -> str:
        return f"{self.data.get(phase, 0.0) / 60:.1f} min" + (" (first run; cached now)" if phase in self.cached else "")


def recognisability_md(r: dict) -> str:
    """bench/diffusion_quality.py's JSON as a Markdown table (accuracy / balanced accuracy per row)."""
    rows = ["| clips | spectrograms | acc. (%) | bal. acc. (%) | chance acc. / bal. (%) | spec. MSE |",
            "|---|---|---|---|---|---|"]
    for split, real in r["real"].items():
        n = r["clips"][split]
        chance = f"{100 * real['chance_acc']:.1f} / {100 * real['chance_balanced_acc']:.1f}"
        rows.append(f"| {split} ({n}) | real recordings | {100 * real['acc']:.1f} | {100 * real['balanced_acc']:.1f} | {chance} | — |")
        for v, res in r["variants"].items():
            x = res[split]
            for name, key in (("generated, own condition", "generated"),
                              ("generated, shuffled condition, vs the condition's label", "shuffled_vs_condition_label"),
                              ("generated, shuffled condition, vs the clip's own label", "shuffled_vs_own_label")):
                mse = f"{x['spec_mse']:.4f}" if key == "generated" else "—"
                rows.append(f"| {split} ({n}) | {v}: {name} | {100 * x[key]['acc']:.1f} | "
                            f"{100 * x[key]['balanced_acc']:.1f} | | {mse} |")
    return (f"DDIM-{r['steps']}, guidance {r['guidance']}, one sample per clip, scored by the evaluate stage's metric "
            "classifier. A condition drives the material when the shuffled-condition samples follow the "
            "condition's label rather than the clip's own.\n\n" + "\n".join(rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", type=Path, default=REPO / "data" / "quality")
    ap.add_argument("--videos", type=int, default=60)
    ap.add_argument("--hits", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--video-epochs", type=int, default=20)
    ap.add_argument("--diffusion-epochs", type=int, default=25)
    ap.add_argument("--ddpm", action="store_true", help="add Table 3's ancestral DDPM over all T steps (slow on a CPU)")
    ap.add_argument("--sweep-dims", default="0,10,25,50,100,200")
    ap.add_argument("--sweep-lr", default="5e-4,2e-3")
    ap.add_argument("--sweep-epochs", type=int, default=10)
    ap.add_argument("--skip-sweep", action="store_true")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "results.md")
    args = ap.parse_args()

    root = args.data_root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    log = root / "quality.log"
    env = dict(os.environ, PHYSDIFF_DATA=str(root), PYTHONUNBUFFERED="1")
    common = [
        "--preset", "tiny", f"seed={args.seed}", f"paths.data_root={root}",
        f"world.videos={args.videos}", f"world.hits_per_video={args.hits}",
        f"video.epochs={args.video_epochs}", f"diffusion.epochs={args.diffusion_epochs}",
        # every row of the paper (the tiny main job leaves the expensive ones out, physdiff/eval/config.py)
        "eval.variants=nn_retrieval,convnet,tts,video,video_label,video_spec,video_mfcc,ours",
        "eval.table3=nn_retrieval,owens_retrieval", "eval.fig5b=modal,modal_residual,ours,predicted_mu",
        f"eval.table3_ddpm={str(args.ddpm).lower()}",
        "train.progress=false",
    ]
    timings = Timings(root / "timings.json")
    t0 = time.time()
    _run([sys.executable, "cluster/launch.py", "--stage", "all", "--local", *common], env, log)
    timings.record("pipeline", time.time() - t0)
    from physdiff.identity import artifact_dir, shards_dir

    cfg = _pipeline_config(common)
    report_dir = artifact_dir(cfg, "evaluate")
    report = json.loads((report_dir / "report.json").read_text())
    report_md = (report_dir / "report.md").read_text()

    # Material recognisability of samples from ground-truth (mu, nu): the test and training splits.
    t1 = time.time()
    dq_json = root / "diffusion_quality.json"
    _run([sys.executable, "bench/diffusion_quality.py", "--reuse-preset", "tiny", "--data-root", str(root),
          "--seed", str(args.seed), "--out", str(dq_json), *[c for c in common[2:] if "=" in c and not c.startswith("eval.")]],
         env, log)
    timings.record("recognisability", time.time() - t1)
    dq_md = recognisability_md(json.loads(dq_json.read_text()))

    sweep_md = ""
    if not args.skip_sweep:
        shards = shards_dir(cfg)  # the evaluated world's (the classifier world's shards live beside them)
        t1 = time.time()
        _run([sys.executable, "sweeps/residual_dims.py", "--preset", "tiny", "--dims", args.sweep_dims,
              "--lr", args.sweep_lr, "--max-concurrent", "2", "--name", f"quality-s{args.seed}",
              f"seed={args.seed}", f"paths.data_root={root}", f"train.shards={shards}",
              f"train.epochs={args.sweep_epochs}", "train.progress=false"], env, log)
        timings.record("sweep", time.time() - t1)
        sweep_md = (root / "sweeps" / f"quality-s{args.seed}" / "results.md").read_text()

    cmd = "python bench/quality.py " + " ".join(shlex.join([f"--{k.replace('_', '-')}", str(v)])
                                               for k, v in vars(args).items()
                                               if k in ("videos", "hits", "seed", "video_epochs", "diffusion_epochs",
                                                        "sweep_dims", "sweep_lr", "sweep_epochs"))
    lines = [
        "# Results on the generated world",
        "",
        "Made by the quality benchmark on a 2-core CPU (no GPU), `tiny` preset, with:",
        "",
        f"```\n{cmd}\n```",
        "",
        f"Pipeline {timings.text('pipeline')}, recognisability {timings.text('recognisability')}, "
        f"sweep {timings.text('sweep') if sweep_md else 'skipped'}; "
        f"seed {args.seed} for the world, every "
        f"training stage and the sampling noise (`eval.sample_seed` {report.get('meta', {}).get('sample_seed', 0)}).",
        f"Test clips: {report.get('meta', {}).get('test_clips', '?')}.",
        "",
        "## Table 1 and Table 3 analogues",
        "",
        report_md,
        "",
        "## Is the material recognisable? Samples from ground-truth (μ, ν)",
        "",
        dq_md,
    ]
    if sweep_md:
        lines += ["", "## Fig. 5a: residual dims sweep (validation MR-STFT, lower is better; M = 0 is modal only)", "",
                  sweep_md]
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
