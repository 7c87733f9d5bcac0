"""The evaluate stage (paper Sec. 4, Tables 1 and 3): every variant scored by one classifier on the test split.

It only *reads* finished artifacts and trains nothing: the metric classifier run (the ``classifier``
stage), the video run's exported nu of every clip, and per Table 1 row the diffusion run of that
``diffusion.variant`` and its index run (each a pipeline job of ``--stage all``). One missing artifact
is one error naming it and the command that makes it.

1. **Test clips**: audio, material label and the video export's nu / logits of every test clip.
2. **Rows** (``eval.variants``), all through the same code:
   - ``nn_retrieval`` (Table 3 baseline): the nearest training clip by visual features (Euclidean on nu)
     *is* the answer: its recorded audio;
   - ``video``, ``video_label``, ``video_spec``, ``ours``: the diffusion run of that variant, conditioned
     on the test nu and the latent retrieved from its index, sampled with the ``sampling`` section (all
     variants share the noise seed), then Griffin-Lim.
   A ``ground_truth`` row scores the recordings themselves: the classifier's ceiling.
3. **Metrics** (:mod:`physdiff.eval.metrics`): FID, KID (mean and std), KL(p_gt || p_gen), accuracy,
   balanced accuracy, spectrogram MSE, MR-STFT distance.
4. **Table 3**: NN retrieval against "ours" with DDIM at each of ``eval.ddim_steps`` (eta 0) and ancestral
   DDPM over all T steps, with seconds per clip.
5. ``report.md`` / ``report.json`` / ``table1.csv`` / ``table3.csv`` in ``<data>/runs/evaluate-<hash>``; its
   MLflow run is opened when the stage starts and tagged with every run it scored.

    physdiff launch --stage evaluate --local --preset tiny
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch

from physdiff import identity
from physdiff.artifacts import finished, read_export, write_done
from physdiff.errors import DataError

from physdiff.stages.clips import SplitClips, load_split, training_nu, video_tables  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- what is scored


def required_runs(cfg: Any) -> dict[str, Path]:
    """{label: run folder} of every artifact this evaluation reads; a DataError listing all that are missing."""
    from physdiff.inference.load import upstream_run
    from physdiff.stages import stage_run_dir
    from physdiff.stages.rows import ROWS

    unknown = [r for r in cfg.eval.rows if r not in ROWS]
    if unknown:
        raise DataError(f"no evaluation row {unknown}; rows: {', '.join(ROWS)}")
    runs: dict[str, Path] = {"classifier": stage_run_dir(cfg, "classifier"), "video": upstream_run(cfg, "video")}
    for r in cfg.eval.rows:
        runs.update(ROWS[r].needs(cfg))
    missing = [(label, path) for label, path in runs.items() if not (path / "DONE.json").is_file()]
    if missing:
        lines = "; ".join(f"{label} ({path})" for label, path in missing)
        raise DataError(f"evaluate needs finished runs that do not exist yet: {lines}. Make them with "
                        f"physdiff launch --stage all (or --stage <name> per run; diffusion variants with "
                        f"diffusion.variant=<variant>)")
    return runs


def nn_retrieval(cfg: Any, test: SplitClips) -> Any:
    """Table 3's baseline: each test clip gets the recorded audio of its nearest training clip by nu."""
    from physdiff.stages.rows import EvalInputs, make_nn_retrieval

    return make_nn_retrieval(EvalInputs(cfg, test, {}, torch.device("cpu")))


# ----------------------------------------------------------------------------- the stage


def run_evaluate(cfg: Any, *, out: str | Path | None = None, device: str | None = None,
                 progress: bool | None = None, force: bool = False) -> dict[str, Any]:
    """The ``evaluate`` task stage: Tables 1 and 3 and Fig. 5b on the test split -> report files + MLflow."""
    import dataclasses

    from physdiff.data.labels import GREATEST_HITS_MATERIALS
    from physdiff.eval.bootstrap import LOWER_IS_BETTER, bootstrap, clip_scores
    from physdiff.eval.metrics import classification_metrics, classifier_outputs
    from physdiff.eval.report import log_report_to_mlflow, table1_row, table3_row, write_report
    from physdiff.inference.load import load_classifier
    from physdiff.physics import peak_normalize, spectrogram_target
    from physdiff.stages.rows import ROWS, EvalInputs, Generated, make_diffusion
    from physdiff.training.tracking import default_tracking_uri, track_task

    progress = cfg.train.progress if progress is None else progress
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    e = cfg.eval
    run_dir = Path(out) if out else identity.artifact_dir(cfg, "evaluate")
    if (run_dir / "DONE.json").is_file() and not force:
        log.info(f"[evaluate] complete: {run_dir / 'report.md'}")
        return finished(run_dir, "evaluate")
    runs = required_runs(cfg)  # before any work: one error naming every missing artifact
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg.write_json(run_dir / "config.json")
    rhash = identity.artifact_hash(cfg, "evaluate")
    t_start = time.time()
    with track_task(cfg, run_dir, "evaluate", rhash) as tracker:
        tracker.set_tags({f"physdiff.scored.{label}": path.name for label, path in runs.items()})
        clf, clf_info = load_classifier(runs["classifier"], dev)
        test = load_split(cfg, "test")
        n = len(test.keys)
        if n < 2:
            raise DataError(f"the test split has {n} clip(s); FID/KID need at least 2")
        k = len(GREATEST_HITS_MATERIALS)
        gt_specs = spectrogram_target(test.audio, cfg.audio)  # (N, 1, F, N)
        gt_audio = peak_normalize(test.audio)  # (N, T)
        gt_out = classifier_outputs(clf, gt_specs, e.batch_size, dev)
        kid = dict(subsets=e.kid_subsets, subset_size=max(2, min(e.kid_subset_size, n // 2)), degree=e.kid_degree)
        ev = EvalInputs(cfg, test, runs, dev, progress)
        scores: dict[str, Any] = {}
        seconds: dict[str, float] = {}

        def score(name: str, gen: Generated) -> None:
            outp = classifier_outputs(clf, gen.specs, e.batch_size, dev)
            scores[name] = clip_scores(outp, gt_out, test.labels, gen.specs, gt_specs, gen.audio, gt_audio)
            seconds[name] = gen.seconds_per_clip

        log.info(f"[evaluate] {n} test clips; rows: {', '.join(e.rows)}")
        score("ground_truth", Generated(gt_specs, gt_audio, 0.0))
        for r in e.rows:
            t0 = time.time()
            score(r, ROWS[r].make(ev))
            log.info(f"[evaluate] {r}: {time.time() - t0:.0f} s")
        # Table 3's sampler settings of "ours" (DDIM at each step count, eta 0; ancestral DDPM over all T)
        t3_settings: list[tuple[str, str, int, float]] = []
        if "ours" in e.rows:
            T = ev.synthesizer("ours").num_timesteps
            settings = [("ddim", st, 0.0) for st in e.ddim_steps if st <= T] + ([("ddpm", 0, 1.0)] if e.table3_ddpm else [])
            for sampler, steps, eta in settings:
                name = f"ours:{sampler}-{steps or T}"
                same = (sampler, steps, eta) == (cfg.sampling.sampler, cfg.sampling.steps, cfg.sampling.eta)
                if same:
                    scores[name], seconds[name] = scores["ours"], seconds["ours"]
                else:
                    vcfg = cfg.copy({"sampling.sampler": sampler, "sampling.steps": steps, "sampling.eta": eta})
                    score(name, make_diffusion("ours")(EvalInputs(vcfg, test, runs, dev, progress, ev.cache)))
                t3_settings.append((name, sampler, steps or T, eta))
                log.info(f"[evaluate] ours {sampler.upper()}-{steps or T}: {seconds[name]:.3f} s/clip")

        t_boot = time.time()
        boot = bootstrap(scores, reps=max(e.bootstrap, 2), set_reps=min(e.bootstrap_set, max(e.bootstrap, 2)),
                         seed=e.metric_seed, kid=kid, level=e.ci_level)
        log.info(f"[evaluate] bootstrap: {e.bootstrap} resamples of the {n} clips ({time.time() - t_boot:.0f} s)")

        def row_metrics(name: str) -> dict[str, Any]:
            m = dict(boot.point[name])
            m["ci"] = {c: list(boot.interval(name, c)) for c in LOWER_IS_BETTER} if e.bootstrap else {}
            return m

        def t1(name: str) -> dict[str, Any]:
            m = row_metrics(name)
            ci = m.pop("ci")
            row = table1_row(name, m)
            if ci:
                row["ci"] = ci
            return row

        table1 = [t1("ground_truth")] + [t1(r) for r in e.variants]
        fig5b = [t1(r) for r in e.fig5b]
        table3 = []
        for r in e.table3:
            m = row_metrics(r)
            ci = m.pop("ci")
            row = table3_row(r, "retrieval", None, m, seconds[r])
            if ci:
                row["ci"] = ci
            table3.append(row)
        for name, sampler, steps, _eta in t3_settings:
            m = row_metrics(name)
            ci = m.pop("ci")
            row = table3_row("ours", sampler, steps, m, seconds[name])
            if ci:
                row["ci"] = ci
            table3.append(row)
        paired = []
        if "ours" in scores and e.bootstrap:
            for other in [r for r in (*e.variants, *e.table3, *e.fig5b) if r != "ours"]:
                if any(p["baseline"] == other for p in paired):
                    continue
                for metric in LOWER_IS_BETTER:
                    d, lo, hi = boot.paired("ours", other, metric)
                    paired.append({"row": "ours", "baseline": other, "metric": metric, "diff": d, "lo": lo, "hi": hi,
                                   "verdict": boot.verdict("ours", other, metric)})
        cm = classification_metrics(torch.nn.functional.one_hot(test.labels, k).double(), test.labels)
        chance = {"acc": cm["chance_acc"], "balanced_acc": cm["chance_balanced_acc"],
                  "classes": int(round(1 / cm["chance_balanced_acc"]))}
        T1 = ev.synthesizer(next(iter(e.diffusion_variants))).num_timesteps if e.diffusion_variants else 0
        meta = {"preset": cfg.preset, "config_hash": rhash, "test_clips": n,
                "table1_sampler": cfg.sampling.describe(T1) if T1 else "",
                "fid": f"on {n} test clips x {gt_out.features.shape[1]}-d classifier features",
                "kid": f"{kid['subsets']} subsets of {kid['subset_size']} clips, polynomial degree {kid['degree']}",
                "intervals": (f"{int(100 * e.ci_level)} % percentile bootstrap over the {n} test clips, {e.bootstrap} "
                              f"resamples ({min(e.bootstrap_set, e.bootstrap)} for FID / KID)") if e.bootstrap else "none",
                "classifier": clf_info.get("backbone"), "classifier_run": runs["classifier"].name,
                "classifier_train_clips": clf_info.get("train_clips"), "device": str(dev),
                "runs": {label: path.name for label, path in runs.items()}, "seconds": round(time.time() - t_start, 1)}
        paths = write_report(run_dir, table1, table3, meta, fig5b=fig5b, paired=paired, chance=chance)
        if tracker.run_id:
            log_report_to_mlflow(run_dir, tracker.run_id, default_tracking_uri(cfg))
        done = {"stage": "evaluate", "run_dir": str(run_dir), "report": {k2: str(p) for k2, p in paths.items()},
                "mlflow_run_id": tracker.run_id, "table1": table1, "table3": table3, "fig5b": fig5b,
                "paired": paired, "chance": chance, "meta": meta}
        write_done(run_dir, done)
    log.info(paths["md"].read_text())
    log.info(f"[evaluate] report: {paths['md']}")
    return done
