"""The quality benchmark: Tables 1 and 3, Fig. 5b and Fig. 5a on a larger world, over several training seeds.

One world (``world.seed`` fixed, ``world.unseen_sites`` of its sites held out of training) and its shards;
then, for each training seed (``seed=s``: every stage's initialisation, data order, sampling noise and the
metric classifier), the real pipeline ``cluster/launch.py --stage all --local``. The first
``--full-seeds`` seeds (default none) run every row of the paper (Table 1's seven systems and NN retrieval,
Table 3's three rows at each DDIM step count, Fig. 5b's four bars); the other seeds run the rows the
comparisons need (NN retrieval, video-only, ours; Fig. 5b without the regressed μ; ours at DDIM-50 only),
which keeps three seeds inside the time budget (every row adds three diffusion variants, two regression
baselines, Owens et al.'s retrieval and the ν → μ regressor per seed). Then the Fig. 5a sweep, selected
on the validation split and reported once on the test split (``--test``), held-out sites apart.
Writes its part of ``docs/results.md`` (between its markers): the command, the mean ± std over seeds,
the paired differences per seed, and every seed's own report::

    python bench/quality.py                                    # 3 seeds, writes docs/results.md (target <= 90 min on 2 cores)
    python bench/quality.py --full-seeds 1                     # seed 0 also runs every row of Tables 1 and 3
    python bench/quality.py --seeds 0,1,2,3,4 --videos 80 --out /tmp/results.md
    python bench/quality.py --skip-sweep                       # the seed comparison only

Everything lives under ``--data-root`` (default ``data/quality``); a rerun skips every stage already complete
for the same config (run folders are named by config hashes), so adding a seed trains only that seed.
The classifier's identity includes ``seed``: each seed's metric classifier is trained again, so the
spread over seeds includes the instrument's own.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CORE_ROWS = "nn_retrieval,video,ours"
ALL_ROWS = "nn_retrieval,convnet,tts,video,video_label,video_spec,video_mfcc,ours"
# the paper's numbers (Greatest Hits, its Table 1 / Table 3) beside ours, for the side-by-side table
PAPER_T1 = {"convnet": (None, None), "tts": (None, None), "video": (54.57, 69.94), "video_label": (None, None),
            "video_spec": (None, None), "video_mfcc": (None, None), "ours": (26.20, 74.09)}


def _run(cmd: list[str], env: dict[str, str], log: Path) -> float:
    print("$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    t0 = time.time()
    with log.open("a") as fh:
        rc = subprocess.call(cmd, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT)
    if rc != 0:
        raise SystemExit(f"error: {' '.join(cmd[1:3])} failed (exit {rc}); see {log}")
    return time.time() - t0


def _mean_std(xs: list[float]) -> str:
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    if not xs:
        return "n/a"
    sd = statistics.stdev(xs) if len(xs) > 1 else float("nan")
    return f"{statistics.fmean(xs):.4g} ± {sd:.2g}"


def seed_summary(reports: dict[int, dict[str, Any]]) -> str:
    """Mean ± std over seeds of every Table 1 metric, for the rows every seed ran."""
    rows = set.intersection(*[{r["variant"] for r in rep["table1"]} for rep in reports.values()])
    order = [r["variant"] for r in next(iter(reports.values()))["table1"] if r["variant"] in rows]
    metrics = (("fid", "FID ↓", 1), ("kid_mean", "KID ↓", 1), ("kl", "KL ↓", 1), ("acc", "Acc. (%) ↑", 100),
               ("balanced_acc", "Bal. acc. (%) ↑", 100), ("spec_mse", "Spec. MSE ↓", 1))
    lines = ["| Variant | " + " | ".join(h for _, h, _ in metrics) + " |", "|---|" + "---|" * len(metrics)]
    for v in order:
        cells = []
        for key, _, scale in metrics:
            vals = [next(r[key] for r in rep["table1"] if r["variant"] == v) for rep in reports.values()]
            cells.append(_mean_std([scale * x if x is not None else None for x in vals]))
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_summary(reports: dict[int, dict[str, Any]]) -> str:
    """Ours against each baseline, per seed: the paired difference on the same clips, its interval, the verdict."""
    want = (("video", ("fid", "kl", "acc", "balanced_acc")), ("nn_retrieval", ("kl", "spec_mse")))
    lines = ["| ours vs | metric | " + " | ".join(f"seed {s}" for s in reports) + " | verdicts (better / tie / worse) |",
             "|---|---|" + "---|" * (len(reports) + 1)]
    for base, metrics in want:
        for m in metrics:
            cells, verdicts = [], {"better": 0, "tie": 0, "worse": 0}
            for rep in reports.values():
                p = next((p for p in rep.get("paired", []) if p["row"] == "ours" and p["baseline"] == base
                          and p["metric"] == m), None)
                if p is None or p.get("diff") is None:
                    cells.append("n/a")
                    continue
                scale = 100 if m in ("acc", "balanced_acc") else 1
                cells.append(f"{scale * p['diff']:+.3g} [{scale * p['lo']:+.3g}, {scale * p['hi']:+.3g}] {p['verdict']}")
                verdicts[p["verdict"]] = verdicts.get(p["verdict"], 0) + 1
            lines.append(f"| {base} | {m} | " + " | ".join(cells) + " | "
                         + " / ".join(str(verdicts[k]) for k in ("better", "tie", "worse")) + " |")
    return "\n".join(lines)


def recognisability(reports: dict[int, dict[str, Any]]) -> str:
    """Generated recognisability as a fraction of the real recordings' (the ground_truth row), per seed."""
    lines = ["| seed | real acc. / bal. (%) | ours acc. / bal. (%) | ours / real: acc. | ours / real: bal. acc. |",
             "|---|---|---|---|---|"]
    fa, fb = [], []
    for s, rep in reports.items():
        t = {r["variant"]: r for r in rep["table1"]}
        gt, ours = t.get("ground_truth"), t.get("ours")
        if not gt or not ours:
            continue
        a, b = ours["acc"] / gt["acc"], ours["balanced_acc"] / gt["balanced_acc"]
        fa.append(a)
        fb.append(b)
        lines.append(f"| {s} | {100 * gt['acc']:.1f} / {100 * gt['balanced_acc']:.1f} | {100 * ours['acc']:.1f} / "
                     f"{100 * ours['balanced_acc']:.1f} | {100 * a:.0f} % | {100 * b:.0f} % |")
    lines.append(f"| mean ± std | | | {_mean_std([100 * x for x in fa])} % | {_mean_std([100 * x for x in fb])} % |")
    return "\n".join(lines)


def paper_side_by_side(rep: dict[str, Any]) -> str:
    """Table 1 of the first full seed beside the paper's published FID / accuracy (Greatest Hits)."""
    lines = ["| Variant | FID (ours, generated world) | Acc. % (ours, generated world) | FID (paper, Greatest Hits) | "
             "Acc. % (paper, Greatest Hits) |", "|---|---|---|---|---|"]
    for r in rep["table1"]:
        pf, pa = PAPER_T1.get(r["variant"], (None, None))
        lines.append(f"| {r['variant']} | {r['fid']:.2f} | {100 * r['acc']:.1f} | {pf if pf is not None else '—'} | "
                     f"{pa if pa is not None else '—'} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", type=Path, default=REPO / "data" / "quality")
    ap.add_argument("--videos", type=int, default=60)
    ap.add_argument("--hits", type=int, default=12)
    ap.add_argument("--world-seed", type=int, default=0, help="world.seed: the one world every seed trains on")
    ap.add_argument("--unseen-sites", type=float, default=0.125, help="world.unseen_sites (of tiny's 8 sites: 1)")
    ap.add_argument("--seeds", default="0,1,2", help="training seeds (seed=s)")
    ap.add_argument("--full-seeds", type=int, default=0, help="how many of the first seeds run every row of the paper "
                    "(Table 1's seven systems, Table 3 at each DDIM step count)")
    ap.add_argument("--video-epochs", type=int, default=20)
    ap.add_argument("--diffusion-epochs", type=int, default=20)
    ap.add_argument("--ddpm", action="store_true", help="add Table 3's ancestral DDPM over all T steps (slow on a CPU)")
    ap.add_argument("--sweep-dims", default="0,10,50,100")
    ap.add_argument("--sweep-lr", default="5e-4,2e-3")
    ap.add_argument("--sweep-epochs", type=int, default=8)
    ap.add_argument("--skip-sweep", action="store_true")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "results.md",
                    help="written between its quality-benchmark markers (the whole file when it has none)")
    args = ap.parse_args()

    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    root = args.data_root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    log = root / "quality.log"
    env = dict(os.environ, PHYSDIFF_DATA=str(root), PYTHONUNBUFFERED="1")
    world = [f"paths.data_root={root}", f"world.seed={args.world_seed}", f"world.videos={args.videos}",
             f"world.hits_per_video={args.hits}", f"world.unseen_sites={args.unseen_sites}"]
    train = [f"video.epochs={args.video_epochs}", f"diffusion.epochs={args.diffusion_epochs}", "train.progress=false",
             f"eval.table3_ddpm={str(args.ddpm).lower()}"]
    from physdiff.config import resolve_config
    from physdiff.identity import artifact_dir, shards_dir

    reports: dict[int, dict[str, Any]] = {}
    report_md: dict[int, str] = {}
    seconds: dict[str, float] = {}
    for i, s in enumerate(seeds):
        full = i < args.full_seeds
        rows = ([f"eval.variants={ALL_ROWS}", "eval.table3=nn_retrieval,owens_retrieval",
                 "eval.fig5b=modal,modal_residual,ours,predicted_mu"] if full
                else [f"eval.variants={CORE_ROWS}", "eval.table3=nn_retrieval", "eval.fig5b=modal,modal_residual,ours",
                      "eval.ddim_steps=50"])
        over = [*world, f"seed={s}", *train, *rows]
        seconds[f"seed {s}"] = _run([sys.executable, "cluster/launch.py", "--stage", "all", "--local", "--preset", "tiny",
                                     *over], env, log)
        cfg = resolve_config("tiny", over)
        rdir = artifact_dir(cfg, "evaluate")
        reports[s] = json.loads((rdir / "report.json").read_text())
        report_md[s] = (rdir / "report.md").read_text()

    sweep_md = test_md = ""
    if not args.skip_sweep:
        cfg = resolve_config("tiny", [*world, f"seed={seeds[0]}"])
        name = f"quality-w{args.world_seed}-s{seeds[0]}"
        seconds["sweep"] = _run([sys.executable, "sweeps/residual_dims.py", "--preset", "tiny", "--dims", args.sweep_dims,
                                 "--lr", args.sweep_lr, "--max-concurrent", "2", "--name", name, "--test",
                                 *world, f"seed={seeds[0]}", f"train.shards={shards_dir(cfg)}",
                                 f"train.epochs={args.sweep_epochs}", "train.progress=false"], env, log)
        sdir = root / "sweeps" / name
        sweep_md = (sdir / "results.md").read_text()
        test_md = (sdir / "test.md").read_text() if (sdir / "test.md").is_file() else "(no test.md: see the log)"

    cmd = "python bench/quality.py " + " ".join(
        shlex.join([f"--{k.replace('_', '-')}", str(v)]) for k, v in vars(args).items()
        if k in ("videos", "hits", "world_seed", "unseen_sites", "seeds", "full_seeds", "video_epochs",
                 "diffusion_epochs", "sweep_dims", "sweep_lr", "sweep_epochs"))
    first = reports[seeds[0]]
    meta = first.get("meta", {})
    lines = [
        "# Quality benchmark on the generated world",
        "",
        "Made on a 2-core CPU (no GPU), `tiny` preset, with:",
        "",
        f"```\n{cmd}\n```",
        "",
        "Wall time: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in seconds.items())
        + " (a stage already complete from an earlier run is skipped, so a rerun is faster).",
        f"One world (`world.seed` {args.world_seed}, {args.videos} videos, `world.unseen_sites` {args.unseen_sites}); "
        f"training seeds {', '.join(map(str, seeds))}; test clips {meta.get('test_clips', '?')}. "
        "**These are measurements on the generated world, not on Greatest Hits.**",
        "",
        "## Over seeds: mean ± std of Table 1 (rows every seed ran)",
        "",
        seed_summary(reports),
        "",
        "## Ours against the baselines, paired on the same test clips, per seed",
        "",
        "Difference ours − baseline with its 95 % paired bootstrap interval over clips; *better* / *worse* when the "
        "interval excludes 0, else *tie*. Lower is better for FID, KL and spectrogram MSE; higher for accuracy.",
        "",
        paired_summary(reports),
        "",
        "## Generated recognisability as a fraction of real recognisability (target ≥ 90 %)",
        "",
        recognisability(reports),
        "",
        f"## Table 1 beside the paper (seed {seeds[0]}{', every row' if args.full_seeds else ''})",
        "",
        paper_side_by_side(first),
        "",
    ]
    if sweep_md:
        lines += ["## Fig. 5a: selected on validation, reported once on test", "",
                  "Validation MR-STFT of every trial (selection):", "", sweep_md, "",
                  "Each M's validation-selected lr at its best validation epoch, on the test split (held-out sites "
                  "apart: objects no training video struck):", "", test_md, ""]
    for s in seeds:
        lines += [f"## Seed {s}: the evaluate stage's report", "", report_md[s].replace("# Evaluation report", "").strip(), ""]
    write_between_markers(args.out, "\n".join(lines))
    print(f"wrote {args.out}")


BEGIN, END = "<!-- quality-benchmark:begin (bench/quality.py writes this part) -->", "<!-- quality-benchmark:end -->"


def write_between_markers(path: Path, text: str) -> None:
    """Replace the benchmark's part of ``path`` (between BEGIN and END); the rest of the file is kept."""
    old = path.read_text() if path.is_file() else ""
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        new = head + BEGIN + "\n" + text.strip() + "\n" + END + rest.split(END, 1)[1]
    else:
        new = BEGIN + "\n" + text.strip() + "\n" + END + "\n" + old
    path.write_text(new)


if __name__ == "__main__":
    main()
