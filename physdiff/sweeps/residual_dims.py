"""Fig. 5a: how the number of residual parameters M changes reconstruction quality, as a Ray Tune sweep.

Every trial trains the physics-prior stage with the project's trainer (``physdiff.training.trainer``,
the same engine as ``cluster/launch.py --stage prior``) for one (M, lr, seed) and reports the
validation multi-resolution STFT loss of modal + residual resynthesis after every epoch; ASHA stops
poor trials early. M = 0 is modal resynthesis alone, the left end of the paper's curve.

Local (this machine, CPUs), a tiny study::

    physdiff sweep residual-dims --preset tiny --dims 0,10,25,50,100 --lr 5e-4,2e-3 --max-concurrent 2

Paper-sized grid, log-uniform learning rates (8 draws per M), on a running Ray cluster with GPUs::

    physdiff sweep residual-dims --address auto --gpus-per-trial 1 --lr-loguniform 1e-4 3e-3 --num-samples 8

Inside a SLURM allocation, ``slurm/ray_sweep.sbatch`` starts the Ray head and workers and runs this
driver with ``--address``. Resume an interrupted sweep (Ctrl-C, a time limit, a lost node): finished
trials are kept, unfinished and errored ones continue from their last checkpoint::

    physdiff sweep residual-dims --resume --name NAME      # NAME printed at the start

Output in ``<data>/sweeps/<name>/``: ``results.csv`` / ``results.md`` (M, lr, seed, best loss,
epochs, status), ``fig5a.png`` (loss vs M, one line per lr, modal-only dashed), ``sweep.json`` (the
study's settings and MLflow ids), ``tune/`` (Ray's experiment state) and ``sweep.digest`` (keyed digests of
the files ``--resume`` reads: a folder this tool did not write for you is refused, physdiff.sweeps.trust). In MLflow the sweep is a
parent run holding the table and figure; each trial is the prior stage's own run nested under it
(params, per-epoch metrics, checkpoint reference).

Selection is on the validation split only. ``--test`` then reports the result once on the test split: per
M, the lr with the lowest mean validation loss, each seed's trial at its best validation epoch, scored per
clip (mean and 95 % bootstrap interval), with the clips of held-out sites (``world.unseen_sites``) apart:
``test.md`` / ``test.json`` in the sweep folder.

Config overrides after the flags apply to every trial (e.g. ``train.epochs=20 prior.d_model=64``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from physdiff.config import Config, add_config_args, config_from_args, from_dict
from physdiff.errors import PhysdiffError, run_cli
from physdiff.sweeps import tune as tc  # first: a missing Ray is the one-line 'sweeps' extra message
from physdiff.sweeps import trust  # noqa: I001  (after tune: it subclasses a Ray Tune callback)

log = logging.getLogger(__name__)

DEFAULT_DIMS = "0,10,25,50,100,200,400"
METRIC = "loss"  # what Tune optimises: validation MR-STFT loss of modal + residual
# The prior recipe's evaluation keys (physdiff.stages.prior): modal + residual, and modal alone.
VAL_KEY = "val/mrstft_full"
VAL_MODAL_KEY = "val/mrstft_modal"
TRIAL_POINTER = "trial_checkpoint.json"
COLUMNS = ("M", "lr", "seed", "best_loss", "best_epoch", "final_loss", "modal_only_loss", "epochs", "status",
           "mlflow_run_id", "run_dir")  # fmt: skip


# ----------------------------------------------------------------------------- the trial


def trial_name(M: int, lr: float, seed: int) -> str:
    return f"M{M}_lr{lr:.2e}_s{seed}"


def _trial_name_creator(trial: Any) -> str:  # Tune calls this for names and folder names
    c = trial.config
    return trial_name(int(c["residual_dims"]), float(c["lr"]), int(c["seed"])) + f"_{trial.trial_id}"


def trial_config(setup: dict[str, Any], M: int, lr: float, seed: int) -> Config:
    """The resolved config of one trial: the sweep's base config with this trial's (M, lr, seed)."""
    from physdiff.config import apply_overrides

    cfg = from_dict(Config, setup["base_config"])
    return apply_overrides(cfg, {
        "prior.residual_dims": M,
        "train.lr": lr,
        "seed": seed,
        "tracking.tracking_uri": setup["tracking_uri"],
        "tracking.experiment": setup["experiment"],
        "tracking.parent_run_id": setup.get("parent_run_id") or "",
        "tracking.run_name": "prior-" + trial_name(M, lr, seed),
        "train.progress": False,  # many trials share one console: no progress bars
    })  # fmt: skip


def _train_prior(cfg: Config, report_fn: Any, stop_fn: Any) -> Any:
    """Train the prior stage with the project's engine (one process; a GPU if Ray assigned one)."""
    from physdiff.stages import train_stage

    return train_stage(cfg, "prior", report_fn=report_fn, stop_fn=stop_fn)


def _tune_metrics(metrics: dict[str, Any], run_dir: Path | None) -> dict[str, Any]:
    """The trainer's metrics (``val/...``) -> flat Tune result keys (Tune nests keys on '/')."""
    out: dict[str, Any] = {k.replace("/", "_"): float(v) for k, v in metrics.items()
                           if isinstance(v, (int, float)) and math.isfinite(float(v))}  # fmt: skip
    if VAL_KEY not in metrics:
        raise PhysdiffError(f"the prior stage reported no '{VAL_KEY}' (got {sorted(metrics)}); "
                            "the sweep needs the validation MR-STFT loss every epoch")
    out[METRIC] = float(metrics[VAL_KEY])
    if VAL_MODAL_KEY in metrics:
        out["loss_modal"] = float(metrics[VAL_MODAL_KEY])
    out["epoch"] = int(metrics.get("epoch", 0))
    if run_dir is not None:
        out["run_dir"] = str(run_dir)
    return out


def prior_trial(config: dict[str, Any], setup: dict[str, Any]) -> None:
    """One Tune trial: train the prior for (M, lr, seed); report the validation loss every epoch.

    Resuming: the trial's run folder is named by its config hash, so a restored trial finds its own
    trainer checkpoints and continues from the newest complete one (model, optimiser, RNG, data
    cursor). The Tune checkpoint is a pointer to that checkpoint (no second copy of the weights).
    """
    from ray import tune

    from physdiff.logs import setup_logging

    setup_logging()  # a Ray worker process: its output goes to the trial's log
    M, lr, seed = int(config["residual_dims"]), float(config["lr"]), int(config["seed"])
    cpus = int(setup.get("cpus_per_trial") or 1)
    import torch

    torch.set_num_threads(max(1, cpus))  # Ray gives each trial `cpus` cores; torch would take them all
    cfg = trial_config(setup, M, lr, seed)
    prev = tune.get_checkpoint()
    if prev is not None:
        with prev.as_directory() as d:
            ptr = json.loads((Path(d) / TRIAL_POINTER).read_text())
        log.info(f"[sweep] {trial_name(M, lr, seed)}: restored; trainer checkpoint {ptr.get('checkpoint')}")

    last_epoch = int(cfg.train.epochs)
    held: dict[str, Any] = {}

    def report(metrics: dict[str, Any], ckpt_dir: Path | None) -> None:
        run_dir = Path(ckpt_dir).parent.parent if ckpt_dir is not None else None
        row = _tune_metrics(metrics, run_dir)
        if row["epoch"] >= last_epoch:
            # Hold the last epoch's report until the trainer has exported and written DONE.json:
            # ASHA answers the report at max_t with STOP, and Tune stops a trial by raising
            # SystemExit inside report(), which would cut the export short.
            held.update(row=row, ckpt=ckpt_dir)
            return
        _report(row, ckpt_dir)  # may raise SystemExit: ASHA stopped this trial (after a complete checkpoint)

    result = _train_prior(cfg, report_fn=report, stop_fn=None)
    if held:
        _report(held["row"], held["ckpt"])
    elif getattr(result, "status", "") in ("skipped", "finished"):
        # No epoch ran here: the run was already complete (same config trained before), or a resumed
        # trial only had its export left. Report the final metrics once so the table holds the trial.
        _report(_tune_metrics(dict(result.metrics, epoch=result.epoch), result.run_dir), None)


def _report(row: dict[str, Any], ckpt_dir: Path | None) -> None:
    """``tune.report`` with a pointer checkpoint: the trainer's checkpoint path (no second copy of the weights)."""
    import tempfile

    from ray import tune

    with tempfile.TemporaryDirectory() as d:
        pointer = {"run_dir": row.get("run_dir"), "checkpoint": str(ckpt_dir) if ckpt_dir else None, "epoch": row["epoch"]}
        (Path(d) / TRIAL_POINTER).write_text(json.dumps(pointer) + "\n")
        tune.report(row, checkpoint=tune.Checkpoint.from_directory(d))


# ----------------------------------------------------------------------------- the study


def build_param_space(study: dict[str, Any]) -> tuple[dict[str, Any], int, Any]:
    """(param_space, Tune num_samples, search_alg) for the study settings in ``sweep.json``.

    Grid learning rates: the grid is M x lr x seed (``num_samples`` distinct seeds, so repeated grid
    points are real repeats with their own run folders, not one run trained twice). Log-uniform
    learning rates: M is a grid and each of ``num_samples`` repeats draws a new lr (seeded).
    """
    from ray import tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    dims = study["dims"]
    seed0 = study["seed"]
    mc = int(study["max_concurrent"] or 0)  # 0: as many trials as resources allow
    if study.get("lr_loguniform"):
        lo, hi = study["lr_loguniform"]
        space = {"residual_dims": tune.grid_search(dims), "lr": tune.loguniform(lo, hi), "seed": seed0}
        return space, study["num_samples"], BasicVariantGenerator(random_state=seed0, max_concurrent=mc)
    seeds = [seed0 + i for i in range(study["num_samples"])]
    space = {"residual_dims": tune.grid_search(dims), "lr": tune.grid_search(study["lrs"]), "seed": tune.grid_search(seeds)}
    return space, 1, BasicVariantGenerator(random_state=seed0, max_concurrent=mc)


def build_trainable(setup: dict[str, Any]) -> Any:
    from ray import tune

    res = {"cpu": setup["cpus_per_trial"], "gpu": setup["gpus_per_trial"]}
    return tune.with_resources(tune.with_parameters(prior_trial, setup=setup), res)


def run_sweep(setup: dict[str, Any], sweep_dir: Path, *, resume: bool) -> dict[str, Any]:
    """Run (or resume) the Tune study; write the table and figure; returns a summary dict."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    exp_dir = sweep_dir / "tune"
    trainable = build_trainable(setup)
    if resume:
        if not tune.Tuner.can_restore(str(exp_dir)):
            raise PhysdiffError(f"{exp_dir}: no Ray Tune experiment state to resume")
        # restore unpickles the folder's files: only ones this tool wrote (physdiff.sweeps.trust)
        trust.verify_sweep(sweep_dir)
        # Finished trials are kept as they are; unfinished and errored ones continue from checkpoints.
        tuner = tune.Tuner.restore(str(exp_dir), trainable=trainable, resume_unfinished=True, resume_errored=True)
    else:
        space, num_samples, search_alg = build_param_space(setup["study"])
        epochs = int(setup["base_config"]["train"]["epochs"])
        st = setup["study"]
        if st["asha"]:
            asha = {"time_attr": "epoch", "max_t": epochs, "grace_period": min(st["grace_period"], epochs),
                    "reduction_factor": st["reduction_factor"]}  # fmt: skip
            if st.get("asha_scope", "per-m") == "per-m":
                scheduler: Any = tc.GroupedASHA("residual_dims", **asha)
            else:
                scheduler = ASHAScheduler(**asha)
        else:
            scheduler = FIFOScheduler()
        tuner = tune.Tuner(
            trainable,
            param_space=space,
            tune_config=tune.TuneConfig(
                metric=METRIC, mode="min", scheduler=scheduler, search_alg=search_alg, num_samples=num_samples,
                trial_name_creator=_trial_name_creator, trial_dirname_creator=_trial_name_creator,
            ),
            run_config=tune.RunConfig(
                name="tune", storage_path=str(sweep_dir), verbose=1,
                # Keep every pointer checkpoint (a few bytes each): with num_to_keep set, Tune forces an
                # experiment-state snapshot at every report.
                checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
                failure_config=tune.FailureConfig(max_failures=setup["study"]["max_failures"]),
                callbacks=[trust.StateSigner(sweep_dir)],  # digests of the experiment state as it is written
            ),
        )  # fmt: skip
        trust.sign_sweep(sweep_dir, ["tune/tuner.pkl"])  # written by the Tuner just now
    tuner.fit()
    return summarize(setup, sweep_dir)


def summarize(setup: dict[str, Any], sweep_dir: Path) -> dict[str, Any]:
    """One row per trial (best/final loss, epochs, status); table + figure into the folder and MLflow."""
    from ray.tune import ExperimentAnalysis

    epochs_max = int(setup["base_config"]["train"]["epochs"])
    # Read the trials back from the saved experiment state, not from the in-memory result: on an
    # interrupt Tune saves the state first (running trials stay RUNNING there, which is what
    # Tuner.restore resumes) and only then stops every trial, marking them all TERMINATED.
    analysis = ExperimentAnalysis(str(sweep_dir / "tune"))
    rows = []
    for t in analysis.trials:
        df = analysis.trial_dataframes.get(t.trial_id)
        c = t.config
        row: dict[str, Any] = {"M": int(c["residual_dims"]), "lr": float(c["lr"]), "seed": int(c["seed"]),
                               "trial_id": t.trial_id}  # fmt: skip
        if df is not None and len(df) and METRIC in df:
            df = df.dropna(subset=[METRIC])
        if df is not None and len(df) and METRIC in df:
            best = df.loc[df[METRIC].idxmin()]
            row.update(best_loss=float(best[METRIC]), best_epoch=int(best["epoch"]), final_loss=float(df[METRIC].iloc[-1]),
                       epochs=int(df["epoch"].max()))  # fmt: skip
            if "loss_modal" in df:
                row["modal_only_loss"] = float(df["loss_modal"].dropna().iloc[-1])
            if "run_dir" in df:
                row["run_dir"] = str(df["run_dir"].dropna().iloc[-1])
        else:
            row.update(best_loss=float("nan"), final_loss=float("nan"), epochs=0)
        if t.status == "TERMINATED":
            stopped = "stopped (ASHA)" if setup["study"]["asha"] else "stopped"
            row["status"] = "finished" if row["epochs"] >= epochs_max else stopped
        elif t.status == "ERROR":
            row["status"] = "error"
        else:
            row["status"] = f"unfinished ({t.status.lower()})"
        if row.get("run_dir") and (Path(row["run_dir"]) / "mlflow.json").exists():
            row["mlflow_run_id"] = json.loads((Path(row["run_dir"]) / "mlflow.json").read_text()).get(setup["tracking_uri"], "")
        row["trial"] = t.trial_id
        rows.append(row)
    rows.sort(key=lambda r: (r["M"], r["lr"], r["seed"]))
    csv_path, md_path = tc.write_table(rows, COLUMNS, sweep_dir, "results")
    png = plot_fig5a(rows, sweep_dir / "fig5a.png", setup)
    by_m = best_per_m(rows)
    complete = all(r["status"] in ("finished", "stopped (ASHA)", "stopped", "error") for r in rows)
    parent = tc.ParentRun(setup["tracking_uri"], setup["experiment"], run_id=setup.get("parent_run_id"))
    for M, v in by_m.items():  # the Fig. 5a curve as a metric over "step" = M, so MLflow can chart it
        parent.log_metric("best_val_mrstft", v, step=M)
    for p in (csv_path, md_path, png, sweep_dir / "sweep.json"):
        if p is not None and p.exists():
            parent.log_artifact(p)
    for r in rows:  # the trial's own stage run (nested child): its sweep status and final checkpoint
        if not r.get("mlflow_run_id"):
            continue
        from physdiff.training.checkpoint import latest_checkpoint

        last = latest_checkpoint(Path(r["run_dir"]) / "checkpoints")
        parent.set_tags({"sweep.trial": r["trial"], "sweep.status": r["status"],
                         "physdiff.final_checkpoint": str(last.path) if last else ""}, run_id=r["mlflow_run_id"])  # fmt: skip
        if r["status"].startswith("stopped"):
            # Tune ends an early-stopped trial inside its report, which the trainer records as FAILED.
            parent.set_child_status(r["mlflow_run_id"], "KILLED")
    parent.set_tags({"sweep.trials": len(rows), "sweep.complete": complete})
    parent.finish("FINISHED" if complete else "KILLED")  # KILLED = interrupted; --resume reopens it
    return {"rows": rows, "best_per_m": by_m, "complete": complete, "table": md_path, "figure": png,
            "errors": sum(r["status"] == "error" for r in rows)}  # fmt: skip


def best_per_m(rows: list[dict[str, Any]]) -> dict[int, float]:
    """min over lr of (mean over seeds of the best validation loss), per M."""
    acc: dict[tuple[int, float], list[float]] = {}
    for r in rows:
        if math.isfinite(r.get("best_loss", float("nan"))):
            acc.setdefault((r["M"], r["lr"]), []).append(r["best_loss"])
    out: dict[int, float] = {}
    for (M, _), v in acc.items():
        m = sum(v) / len(v)
        out[M] = min(out.get(M, math.inf), m)
    return dict(sorted(out.items()))


def selected_per_m(rows: list[dict[str, Any]]) -> dict[int, float]:
    """Per M, the lr whose mean (over seeds) best validation loss is lowest: what the test split then scores."""
    acc: dict[tuple[int, float], list[float]] = {}
    for r in rows:
        if math.isfinite(r.get("best_loss", float("nan"))):
            acc.setdefault((r["M"], r["lr"]), []).append(r["best_loss"])
    best: dict[int, tuple[float, float]] = {}
    for (M, lr), v in acc.items():
        m = sum(v) / len(v)
        if M not in best or m < best[M][0]:
            best[M] = (m, lr)
    return {M: lr for M, (_, lr) in sorted(best.items())}


def _mean_ci(values: list[float], reps: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """Mean and 95 % percentile bootstrap interval over clips."""
    import numpy as np

    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    idx = np.random.default_rng(seed).integers(0, x.size, size=(reps, x.size))
    means = x[idx].mean(axis=1)
    return float(x.mean()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def score_selected(setup: dict[str, Any], rows: list[dict[str, Any]], split: str = "test") -> list[dict[str, Any]]:
    """Fig. 5a reported once on ``split``: per M, the validation-selected lr's trials, each at its best
    validation epoch (``<run>/best/model.safetensors``), scored per clip on ``split``.

    Returns one row per (M, lr, seed) with the MR-STFT of modal + residual and of modal alone (mean and 95 %
    bootstrap interval over clips), on all clips and, for a world with ``world.unseen_sites``, on the clips
    of held-out sites (objects no training video struck) and the rest.
    """
    import torch
    from safetensors.torch import load_file

    from physdiff.identity import shards_dir
    from physdiff.stages import get_recipe

    chosen = selected_per_m(rows)
    out: list[dict[str, Any]] = []
    held: dict[str, bool] | None = None
    for r in rows:
        if chosen.get(r["M"]) != r["lr"] or not r.get("run_dir"):
            continue
        best = Path(r["run_dir"]) / "best" / "model.safetensors"
        if not best.is_file():
            log.info(f"[sweep] {trial_name(r['M'], r['lr'], r['seed'])}: no validation-selected weights ({best}); not scored")
            continue
        cfg = trial_config(setup, r["M"], r["lr"], r["seed"])
        recipe = get_recipe("prior")
        recipe.setup(cfg, 0, 1)
        model = recipe.build_model(cfg)
        model.load_state_dict(load_file(str(best)))
        model.eval()
        torch.manual_seed(int(cfg.seed))  # the residual's noise draw: the same for every trial
        losses = recipe.clip_losses(model, cfg, split)
        if held is None:
            held = _held_out_keys(shards_dir(cfg), cfg.audio.sample_rate)
        row = {"M": r["M"], "lr": r["lr"], "seed": r["seed"], "best_epoch": r.get("best_epoch"),
               "val_loss": r.get("best_loss"), "clips": len(losses)}
        groups = {"all": list(losses)}
        if held:
            groups["unseen_sites"] = [k for k in losses if held.get(k)]
            groups["seen_sites"] = [k for k in losses if not held.get(k)]
        for g, keys in groups.items():
            row[f"{g}_clips"] = len(keys)
            for j, name in ((1, "full"), (0, "modal")):
                m, lo, hi = _mean_ci([losses[k][j] for k in keys])
                row[f"{g}_{name}"], row[f"{g}_{name}_lo"], row[f"{g}_{name}_hi"] = m, lo, hi
        out.append(row)
    return out


def _held_out_keys(shards: Path, sample_rate: int) -> dict[str, bool]:
    """{clip key: recorded at a held-out site} from the world the shards were built from ({} when unknown)."""
    try:
        source = Path(json.loads((shards / "summary.json").read_text())["source"])
        from physdiff.world.truth import clip_truth

        return {k: t.held_out_site for k, t in clip_truth(source, sample_rate).items()}
    except (OSError, KeyError, ValueError, PhysdiffError) as e:
        log.info(f"[sweep] no site truth for {shards} ({e}): the test split is scored as one group")
        return {}


def test_markdown(scored: list[dict[str, Any]], split: str = "test") -> str:
    """The test-split table of :func:`score_selected` (mean [95 % interval] over clips)."""
    if not scored:
        return "(no trial had validation-selected weights to score)"
    groups = [g for g in ("all", "seen_sites", "unseen_sites") if f"{g}_clips" in scored[0]]
    head = "| M | lr (val-selected) | seed | best epoch | val MR-STFT | " + " | ".join(
        f"{split} {g.replace('_', ' ')} ({scored[0][f'{g}_clips']} clips): modal + residual / modal" for g in groups) + " |"
    lines = [head, "|" + "---|" * (5 + len(groups))]
    for r in scored:
        cells = [f"{r[f'{g}_full']:.3f} [{r[f'{g}_full_lo']:.3f}, {r[f'{g}_full_hi']:.3f}] / {r[f'{g}_modal']:.3f}"
                 if r[f"{g}_clips"] else "n/a" for g in groups]
        lines.append(f"| {r['M']} | {r['lr']:g} | {r['seed']} | {r['best_epoch']} | {r['val_loss']:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_fig5a(rows: list[dict[str, Any]], path: Path, setup: dict[str, Any]) -> Path | None:
    """Loss vs M (symlog x so M = 0 shows), one line per lr, the best-lr envelope, modal-only dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    good = [r for r in rows if math.isfinite(r.get("best_loss", float("nan")))]
    if not good:
        return None
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    lrs = sorted({r["lr"] for r in good})
    if len(lrs) <= 8:  # a grid: one line per lr (log-uniform draws are scattered instead)
        for lr in lrs:
            pts: dict[int, list[float]] = {}
            for r in good:
                if r["lr"] == lr:
                    pts.setdefault(r["M"], []).append(r["best_loss"])
            ms = sorted(pts)
            ax.plot(ms, [sum(pts[m]) / len(pts[m]) for m in ms], "o-", alpha=0.6, lw=1, ms=4, label=f"lr {lr:.1e}")
    else:
        ax.scatter([r["M"] for r in good], [r["best_loss"] for r in good], s=10, alpha=0.5, label="trials")
    env = best_per_m(good)
    ax.plot(list(env), list(env.values()), "k-", lw=2.2, label="best over lr")
    modal = [r["modal_only_loss"] for r in good if math.isfinite(r.get("modal_only_loss", float("nan")))]
    if modal:
        ax.axhline(sum(modal) / len(modal), ls="--", color="tab:red", lw=1.2, label="modal only")
    ax.set_xscale("symlog", linthresh=10)
    ms = sorted({r["M"] for r in good})
    ax.set_xlim(-0.5, max(ms) * 1.15 + 1)
    ax.set_xticks(ms, [str(m) for m in ms])
    ax.set_xlabel("residual parameters M")
    ax.set_ylabel("validation MR-STFT loss")
    ax.set_title(f"Fig. 5a: residual dims ({setup['base_config'].get('preset', '')} preset)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- CLI


def study_settings(a: argparse.Namespace, cfg: Config) -> dict[str, Any]:
    dims = tc.parse_ints(a.dims, "--dims")
    study: dict[str, Any] = {
        "dims": tc.unique(dims), "seed": cfg.seed, "num_samples": a.num_samples, "max_concurrent": a.max_concurrent,
        "asha": not a.no_asha, "asha_scope": a.asha_scope, "grace_period": a.grace_period, "reduction_factor": a.reduction_factor,
        "max_failures": a.max_failures,
    }  # fmt: skip
    if a.lr_loguniform:
        lo, hi = a.lr_loguniform
        if not 0 < lo < hi:
            raise PhysdiffError(f"--lr-loguniform: need 0 < LOW < HIGH, got {lo} {hi}")
        study["lr_loguniform"] = [lo, hi]
    else:
        study["lrs"] = tc.unique(tc.parse_floats(a.lr or str(cfg.train.lr), "--lr"))
    if a.num_samples < 1:
        raise PhysdiffError("--num-samples must be >= 1")
    return study


def main(argv: list[str] | None = None) -> int:
    from physdiff.cli.common import parser

    p = parser("physdiff sweep residual-dims", __doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--dims", default=DEFAULT_DIMS, help=f"residual dims M to try (default {DEFAULT_DIMS}; 0 = modal only)")
    p.add_argument("--lr", default="", help="learning-rate grid, comma-separated (default: train.lr)")
    p.add_argument("--lr-loguniform", nargs=2, type=float, metavar=("LOW", "HIGH"), help="sample lr log-uniformly instead")
    p.add_argument("--num-samples", type=int, default=1, help="seeds per grid point (grid lr) or lr draws per M (log-uniform)")
    p.add_argument("--max-concurrent", type=int, default=0, help="trials running at once (0: as many as resources allow)")
    p.add_argument("--no-asha", action="store_true", help="train every trial to the end (no early stopping)")
    p.add_argument("--asha-scope", choices=("per-m", "global"), default="per-m",
                   help="per-m (default): ASHA picks the lr within each M; global: trials of all M compete")
    p.add_argument("--grace-period", type=int, default=2, help="ASHA: epochs before a trial may be stopped")
    p.add_argument("--reduction-factor", type=float, default=3, help="ASHA: keep 1/factor of trials per rung")
    p.add_argument("--cpus-per-trial", type=int, default=1, help="CPUs Ray gives each trial (default: 1)")
    p.add_argument("--gpus-per-trial", type=float, default=0, help="GPUs per trial (cluster); 0 trains on CPUs")
    p.add_argument("--max-failures", type=int, default=1, help="automatic retries of a crashed trial (from its checkpoint)")
    p.add_argument("--address", default="", help="a running Ray cluster ('auto' or HOST:PORT); default: start Ray here")
    p.add_argument("--num-cpus", type=int, default=0, help="local Ray only: CPUs Ray may use (default: all)")
    p.add_argument("--name", default="", help="sweep name (folder <data>/sweeps/NAME); default: a hash of the study")
    p.add_argument("--resume", action="store_true", help="continue the interrupted sweep NAME (Tuner.restore)")
    p.add_argument("--seed", type=int, default=None, help="the first training seed of the study (seed)")
    p.add_argument("--test", action="store_true",
                   help="after the sweep, score each M's validation-selected lr (best epoch) once on the test split "
                        "(test.md / test.json in the sweep folder; held-out sites separately)")
    from physdiff.cli.common import add_data_args, data_overrides

    add_data_args(p)
    add_config_args(p)
    a = p.parse_args(argv)
    cfg = config_from_args(a, {**data_overrides(a), "seed": a.seed})
    from physdiff.training.tracking import default_tracking_uri

    sweeps_root = cfg.paths.root() / "sweeps"
    if a.resume:
        if not a.name:
            raise PhysdiffError("--resume needs --name NAME (the sweep folder under " f"{sweeps_root})")
        sweep_dir = sweeps_root / a.name
        if not (sweep_dir / "sweep.json").exists():
            raise PhysdiffError(f"{sweep_dir / 'sweep.json'}: no sweep to resume")
        trust.verify_sweep(sweep_dir)  # before anything of the folder is used (see physdiff.sweeps.trust)
        setup = tc.read_json(sweep_dir / "sweep.json")
    else:
        from physdiff.identity import artifact_name

        study = study_settings(a, cfg)
        base = cfg.to_dict()
        name = a.name or artifact_name(cfg, "sweep", prefix="residual_dims",
                                       extra={k: v for k, v in study.items() if k != "max_concurrent"})
        sweep_dir = sweeps_root / name
        if (sweep_dir / "tune").exists():
            raise PhysdiffError(f"{sweep_dir} already holds a sweep: continue it with --resume --name {name}, "
                                "or choose another --name")  # fmt: skip
        setup = {
            "name": name, "study": study, "base_config": base, "created": time.time(),
            "tracking_uri": default_tracking_uri(cfg), "experiment": cfg.tracking.experiment,
            "cpus_per_trial": a.cpus_per_trial, "gpus_per_trial": a.gpus_per_trial, "parent_run_id": "",
            "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        }  # fmt: skip
    sweep_dir.mkdir(parents=True, exist_ok=True)
    log.info(f"[sweep] {setup['name']}: folder {sweep_dir}")

    parent = tc.ParentRun(setup["tracking_uri"], setup["experiment"], run_id=setup.get("parent_run_id") or None)
    if tc.sqlite_path(setup["tracking_uri"]) is not None:
        parent.artifact_location = (cfg.paths.root() / "mlartifacts").as_uri()
    study_params = {f"sweep.{k}": v for k, v in setup["study"].items()}
    study_params.update({"sweep.preset": setup["base_config"].get("preset"), "sweep.epochs": setup["base_config"]["train"]["epochs"]})
    rid = parent.open(f"sweep-{setup['name']}", {"physdiff.stage": "sweep", "physdiff.sweep": setup["name"],
                                                   "physdiff.sweep_dir": str(sweep_dir)}, study_params)  # fmt: skip
    setup["parent_run_id"] = rid or ""
    tc.write_json(sweep_dir / "sweep.json", setup)
    trust.sign_sweep(sweep_dir, ["sweep.json"])
    if rid:
        log.info(f"[sweep] MLflow: {setup['tracking_uri']} experiment '{setup['experiment']}', parent run {rid}")

    tc.init_ray(a.address, num_cpus=a.num_cpus or None)
    out = run_sweep(setup, sweep_dir, resume=a.resume)
    print(Path(out["table"]).read_text())
    if out["best_per_m"]:
        best_m = min(out["best_per_m"], key=out["best_per_m"].get)
        log.info(f"[sweep] best loss per M: " + ", ".join(f"M={m}: {v:.4f}" for m, v in out["best_per_m"].items())
              + f"; lowest at M={best_m}")  # fmt: skip
    log.info(f"[sweep] table {out['table']}; figure {out['figure']}")
    if a.test and out["complete"]:
        from physdiff.fileio import atomic_write_json, atomic_write_text

        scored = score_selected(setup, out["rows"])
        atomic_write_json(sweep_dir / "test.json", scored)
        md = test_markdown(scored)
        atomic_write_text(sweep_dir / "test.md", md + "\n")
        print(md)
    if not out["complete"]:
        log.info(f"[sweep] interrupted; continue with: physdiff sweep residual-dims --resume --name {setup['name']}")
        return 130
    return 1 if out["errors"] else 0


if __name__ == "__main__":
    run_cli(lambda: main(sys.argv[1:]))
