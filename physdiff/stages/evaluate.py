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

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from physdiff import identity
from physdiff.artifacts import finished, read_export, write_done
from physdiff.errors import DataError

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
    from physdiff.inference.load import upstream_run

    return read_export(upstream_run(cfg, "video"), "video").splits


def load_split(cfg: Any, split: str, keys: set[str] | None = None) -> SplitClips:
    """Clips of ``split`` (only ``keys`` when given) with the video export joined by key."""
    from physdiff.data.reader import make_loader

    tables = video_tables(cfg)
    if split not in tables:
        raise DataError(f"the video export has no '{split}' split")
    ks, labels, audio, nu, logits = [], [], [], [], []
    shards = identity.shards_dir(cfg)
    for b in make_loader(shards, split, batch_size=64, mode="eval", side_tables={"video": tables[split]}):
        for j, k in enumerate(b["key"]):
            if keys is not None and k not in keys:
                continue
            ks.append(str(k))
            labels.append(b["material"][j])
            audio.append(b["audio"][j])
            nu.append(b["video/nu"][j])
            logits.append(b["video/logits"][j])
    if not ks:
        raise DataError(f"no clips in the {split} split under {shards}")
    return SplitClips(ks, torch.stack(labels).long(), torch.stack(audio).float(), torch.stack(nu).float(),
                      torch.stack(logits).float())


def training_nu(cfg: Any) -> tuple[list[str], Tensor]:
    """(keys, nu (N, D)) of every training clip, from the video export."""
    from physdiff.data.sidetable import read_side_table

    t = read_side_table(video_tables(cfg)["train"])
    return list(t.keys), torch.from_numpy(t.arrays["nu"]).float()


# ----------------------------------------------------------------------------- what is scored


def required_runs(cfg: Any) -> dict[str, Path]:
    """{label: run folder} of every artifact this evaluation reads; a DataError listing all that are missing."""
    from physdiff.inference.conditioning import LATENT_NAME
    from physdiff.inference.load import upstream_run
    from physdiff.stages import stage_run_dir

    runs: dict[str, Path] = {"classifier": stage_run_dir(cfg, "classifier"), "video": upstream_run(cfg, "video")}
    for v in cfg.eval.diffusion_variants:
        vcfg = identity.variant_config(cfg, v)
        runs[f"diffusion-{v}"] = identity.artifact_dir(vcfg, "diffusion")
        if LATENT_NAME[v] is not None:
            runs[f"index-{v}"] = identity.artifact_dir(vcfg, "index")
    missing = [(label, path) for label, path in runs.items() if not (path / "DONE.json").is_file()]
    if missing:
        lines = "; ".join(f"{label} ({path})" for label, path in missing)
        raise DataError(f"evaluate needs finished runs that do not exist yet: {lines}. Make them with "
                        f"physdiff launch --stage all (or --stage <name> per run; diffusion variants with "
                        f"diffusion.variant=<variant>)")
    return runs


@dataclass
class Generated:
    specs: Tensor  # (N, 1, F, N_frames) normalised log-magnitude
    audio: Tensor  # (N, T) peak-normalised
    seconds_per_clip: float


def nn_retrieval(cfg: Any, test: SplitClips) -> Generated:
    """Table 3's baseline: each test clip gets the recorded audio of its nearest training clip by nu."""
    from physdiff.physics import peak_normalize, spectrogram_target
    from physdiff.retrieval import query

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


def diffusion_variant(synth: Any, test: SplitClips, opts: Any, progress: bool) -> Generated:
    """Sample every test clip with a diffusion run: test nu -> retrieved latent -> sampler -> Griffin-Lim."""
    t0 = time.time()
    cond, _keys, _dist = synth.conditions(test.nu, test.logits)  # (N, C)
    specs = synth.sample(cond, opts, progress=progress)  # (N, 1, F, N)
    audio = synth.to_audio(specs)  # (N, T)
    return Generated(specs, audio, (time.time() - t0) / specs.shape[0])


# ----------------------------------------------------------------------------- the stage


def run_evaluate(cfg: Any, *, out: str | Path | None = None, device: str | None = None,
                 progress: bool | None = None, force: bool = False) -> dict[str, Any]:
    """The ``evaluate`` task stage: Tables 1 and 3 on the test split -> report files + MLflow."""
    import dataclasses

    from physdiff.data.labels import GREATEST_HITS_MATERIALS
    from physdiff.eval.metrics import classifier_outputs, compute_metrics
    from physdiff.eval.report import log_report_to_mlflow, table1_row, table3_row, write_report
    from physdiff.inference.load import load_classifier
    from physdiff.inference.synthesizer import Synthesizer
    from physdiff.physics import peak_normalize, spectrogram_target
    from physdiff.training.tracking import default_tracking_uri, track_task

    progress = cfg.train.progress if progress is None else progress
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    e = cfg.eval
    run_dir = Path(out) if out else identity.artifact_dir(cfg, "evaluate")
    if (run_dir / "DONE.json").is_file() and not force:
        print(f"[evaluate] complete: {run_dir / 'report.md'}", flush=True)
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
        if len(test.keys) < 2:
            raise DataError(f"the test split has {len(test.keys)} clip(s); FID/KID need at least 2")
        k = len(GREATEST_HITS_MATERIALS)
        gt_specs = spectrogram_target(test.audio, cfg.audio)  # (N, 1, F, N)
        gt_audio = peak_normalize(test.audio)  # (N, T)
        gt_out = classifier_outputs(clf, gt_specs, e.batch_size, dev)
        kid_kw = dict(kid_subsets=e.kid_subsets, kid_subset_size=e.kid_subset_size, kid_degree=e.kid_degree,
                      seed=e.metric_seed)

        def score(gen: Generated) -> dict[str, float]:
            outp = classifier_outputs(clf, gen.specs, e.batch_size, dev)
            return compute_metrics(outp, gt_out, test.labels, k, gen.specs, gt_specs, gen.audio, gt_audio, **kid_kw)

        print(f"[evaluate] {len(test.keys)} test clips; rows: {', '.join(e.variants)}", flush=True)
        table1, table3 = [table1_row("ground_truth", score(Generated(gt_specs, gt_audio, 0.0)))], []
        synths = {v: Synthesizer.from_run(runs[f"diffusion-{v}"], dev, with_video=False,
                                          index_dir=runs.get(f"index-{v}")) for v in e.diffusion_variants}
        t1_opts = cfg.sampling
        cache: dict[tuple, tuple[dict[str, float], float]] = {}
        for v in e.variants:
            t0 = time.time()
            if v == "nn_retrieval":
                gen = nn_retrieval(cfg, test)
                m = score(gen)
                table3.append(table3_row("nn_retrieval", "retrieval", None, m, gen.seconds_per_clip))
            else:
                gen = diffusion_variant(synths[v], test, t1_opts, progress)
                m = score(gen)
                cache[(v, t1_opts.sampler, t1_opts.steps, t1_opts.eta)] = (m, gen.seconds_per_clip)
            table1.append(table1_row(v, m))
            print(f"[evaluate] {v}: " + ", ".join(f"{n} {x:.4g}" for n, x in m.items()) + f" ({time.time() - t0:.0f} s)",
                  flush=True)

        if "ours" in synths:  # Table 3: sampler steps (DDIM, eta 0) against ancestral DDPM over all T
            T = synths["ours"].num_timesteps
            settings = [("ddim", s, 0.0) for s in e.ddim_steps if s <= T] + ([("ddpm", 0, 1.0)] if e.table3_ddpm else [])
            for sampler, steps, eta in settings:
                key = ("ours", sampler, steps, eta)
                if key not in cache:
                    opts = dataclasses.replace(t1_opts, sampler=sampler, steps=steps, eta=eta)
                    gen = diffusion_variant(synths["ours"], test, opts, progress)
                    cache[key] = (score(gen), gen.seconds_per_clip)
                m, spc = cache[key]
                table3.append(table3_row("ours", sampler, steps or T, m, spc))
                print(f"[evaluate] ours {sampler.upper()}-{steps or T}: fid {m['fid']:.4g}, acc {m['acc']:.3f} "
                      f"({spc:.3f} s/clip)", flush=True)

        T1 = next(iter(synths.values())).num_timesteps if synths else 0
        meta = {"preset": cfg.preset, "config_hash": rhash, "test_clips": len(test.keys),
                "table1_sampler": t1_opts.describe(T1) if synths else "",
                "classifier": clf_info.get("backbone"), "classifier_run": runs["classifier"].name,
                "classifier_train_clips": clf_info.get("train_clips"), "device": str(dev),
                "runs": {label: path.name for label, path in runs.items()}, "seconds": round(time.time() - t_start, 1)}
        paths = write_report(run_dir, table1, table3, meta)
        if tracker.run_id:
            log_report_to_mlflow(run_dir, tracker.run_id, default_tracking_uri(cfg))
        done = {"stage": "evaluate", "run_dir": str(run_dir), "report": {k2: str(p) for k2, p in paths.items()},
                "mlflow_run_id": tracker.run_id, "table1": table1, "table3": table3, "meta": meta}
        write_done(run_dir, done)
    print(paths["md"].read_text(), flush=True)
    print(f"[evaluate] report: {paths['md']}", flush=True)
    return done
