"""``physdiff edit --study``: the measured effect of the two project-page edits over the test clips of trained runs.

    physdiff edit --study --fix-material wood --out study/               # how often the sound follows the material
    physdiff edit --study --fix-material all --remove-below-hz 500 --out study/ --clips 40 --steps 25

Both edits act at inference, where a test clip has no sound: its priors are the ones retrieved by nu (Sec. 3.4).

- ``--fix-material M`` (``all``: every material with training clips): mu of the nearest-by-nu training clip *of
  material M* replaces the retrieved mu in c = [mu, nu']; the "ours" model samples with the same noise as the
  unedited sound. Measured: over the test clips not of M, the share the metric classifier assigns to M, after
  and before the edit (Wilson 95 % intervals), and its recall of M on real test recordings (its ceiling).
- ``--remove-below-hz F``: the retrieved priors' modes below F are muted (and residual bands overlapping
  [0, F]); measured on the direct modal + residual resynthesis (without peak normalisation, so the levels are
  the priors') and on the diffusion model conditioned on the edited mu (same noise): the change of the energy
  below F and of the energy above it, in dB per clip, mean with a 95 % bootstrap interval over clips.

``study.json`` and ``study.md`` (the tables printed) go to ``--out``; ``docs/results.md`` quotes them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from physdiff.errors import DataError, PhysdiffError


def split_labels(cfg: Any, split: str) -> dict[str, int]:
    """{clip key: material label} of a split of the run's shards (audio is read, frames are not)."""
    from physdiff.data.reader import make_loader
    from physdiff.identity import shards_dir

    out: dict[str, int] = {}
    for b in make_loader(shards_dir(cfg), split, batch_size=64, mode="eval"):
        out.update({str(k): int(m) for k, m in zip(b["key"], b["material"])})
    return out


def material_index(name: str) -> int:
    from physdiff.data.labels import GREATEST_HITS_MATERIALS

    if name not in GREATEST_HITS_MATERIALS:
        raise PhysdiffError(f"--fix-material {name!r} is not a material; materials: {', '.join(GREATEST_HITS_MATERIALS)}")
    return GREATEST_HITS_MATERIALS.index(name)


def index_materials(synth: Any, cfg: Any) -> torch.Tensor:
    """(N,) material label of each training clip of the synthesizer's index, in the index's row order."""
    labels = split_labels(cfg, "train")
    missing = [k for k in synth.index.clip_keys if k not in labels]
    if missing:
        raise DataError(f"the index of {synth.diffusion.run_dir} holds clips that are not in the training shards "
                        f"(e.g. {missing[0]}): rebuild it")
    return torch.tensor([labels[k] for k in synth.index.clip_keys])


def _predict(clf: Any, specs: torch.Tensor, batch: int, device: Any) -> torch.Tensor:
    from physdiff.eval.metrics import classifier_outputs

    return classifier_outputs(clf, specs, batch, device).logits.argmax(-1)  # (N,)


def fix_material_study(cfg: Any, synth: Any, test: Any, clf: Any, targets: list[int], opts: Any,
                       progress: bool = False) -> dict[str, Any]:
    """Over the test clips: the classifier's verdict on sounds sampled with the priors of each target material."""
    from physdiff.data.labels import GREATEST_HITS_MATERIALS
    from physdiff.eval.edit_study import follow_rate, nearest_of_material, wilson_interval
    from physdiff.inference.conditioning import assemble_condition
    from physdiff.physics import spectrogram_target

    device = synth.device
    bs = cfg.eval.batch_size
    visual = test.logits if synth.cfg.diffusion.visual_input == "logits" else test.nu
    mats = index_materials(synth, cfg)
    cond0, _keys, _d = synth.conditions(test.nu, test.logits)  # (N, C): the unedited, retrieved priors
    pred0 = _predict(clf, synth.sample(cond0, opts, progress=progress), bs, device)  # (N,)
    pred_real = _predict(clf, spectrogram_target(test.audio, cfg.audio), bs, device)  # (N,)
    rows = []
    for m in targets:
        if not bool((mats == m).any()):
            continue
        t0 = time.time()
        mu_m, _picked = nearest_of_material(synth.index.keys, synth.index.values, mats, test.nu, m)  # (N, L)
        with torch.no_grad():
            cond = assemble_condition(synth.diffusion, visual.to(device), mu_m)  # (N, C)
        pred = _predict(clf, synth.sample(cond, opts, progress=progress), bs, device)  # the same noise as pred0
        real = test.labels == m
        k_real = int((pred_real[real] == m).sum())
        rows.append({"material": GREATEST_HITS_MATERIALS[m], "after": follow_rate(pred, test.labels, m),
                     "before": follow_rate(pred0, test.labels, m),
                     "real_recall": {"clips": int(real.sum()), "rate": k_real / int(real.sum()) if int(real.sum()) else None,
                                     "ci": list(wilson_interval(k_real, int(real.sum())))},
                     "training_clips": int((mats == m).sum()), "seconds": round(time.time() - t0, 1)})
        if progress:
            r = rows[-1]
            print(f"[edit-study] {r['material']}: {100 * r['after']['rate']:.1f} % after, "
                  f"{100 * r['before']['rate']:.1f} % before ({r['seconds']} s)", flush=True)
    if not rows:
        raise DataError("none of the chosen materials has training clips in the index")
    k = sum(r["after"]["followed"] for r in rows)
    n = sum(r["after"]["clips"] for r in rows)
    k0 = sum(r["before"]["followed"] for r in rows)
    return {"edit": "fix_material", "rows": rows,
            "pooled": {"after": {"followed": k, "clips": n, "rate": k / n if n else None, "ci": list(wilson_interval(k, n))},
                       "before": {"followed": k0, "clips": n, "rate": k0 / n if n else None,
                                  "ci": list(wilson_interval(k0, n))}},
            "chance": 1.0 / len(rows)}


def remove_low_study(cfg: Any, synth: Any, test: Any, cutoff: float, opts: Any, progress: bool = False) -> dict[str, Any]:
    """Over the test clips' retrieved priors: the energy change below and above ``cutoff`` when its modes are muted."""
    from physdiff.artifacts import read_export
    from physdiff.eval.edit_study import audio_band_energies, level_change, spectrogram_band_energies
    from physdiff.eval.editing import EditSpec, apply_edit, resynthesize
    from physdiff.inference.conditioning import assemble_condition, physics_latents
    from physdiff.inference.load import upstream_run
    from physdiff.physics import Modes, ResidualNoise, band_edges
    from physdiff.stages.clips import load_split

    a, ph = cfg.audio, cfg.physics
    _c, keys, _d = synth.conditions(test.nu, test.logits)  # the training clip each test clip retrieves
    prior = read_export(upstream_run(cfg, "prior"), "prior").table("train")
    train = load_split(cfg, "train", set(keys), extra_tables={"prior": prior})
    row = [train.keys.index(k) for k in keys]
    m = train.modes[row].double()  # (N, 3, D)
    modes = Modes(m[:, 0], m[:, 1], m[:, 2])
    weight, gamma = train.extra["prior/weight"][row].double(), train.extra["prior/gamma"][row].double()  # (N, M)
    nb = weight.shape[1]
    residual = (ResidualNoise(nb, a.sample_rate, a.num_samples, ph.residual_fmin, ph.residual_spacing,
                              ph.residual_seed).double() if nb else None)
    edges = band_edges(nb, a.sample_rate, ph.residual_fmin, ph.residual_spacing) if nb else None
    spec = EditSpec(mute_hz=((0.0, float(cutoff)),))
    new_modes, new_gamma, new_weight = apply_edit(modes, gamma, weight, spec, a.sample_rate, edges, a.floor_db)
    out: dict[str, Any] = {"edit": "remove_below_hz", "cutoff_hz": float(cutoff), "clips": len(keys),
                           "muted_modes_per_clip": float((new_modes.power != modes.power).sum(1).double().mean()),
                           # the same bands for every clip (the layout is fixed): those overlapping [0, cutoff]
                           "muted_residual_bands": int((new_weight == 0).any(0).sum()) if nb else 0}
    with torch.no_grad():
        before = resynthesize(modes, gamma, weight, residual, a.sample_rate, a.num_samples, normalize=False)  # (N, T)
        after = resynthesize(new_modes, new_gamma, new_weight, residual, a.sample_rate, a.num_samples, normalize=False)
    lo0, hi0 = audio_band_energies(before, a.sample_rate, a.n_fft, a.hop_length, cutoff)
    lo1, hi1 = audio_band_energies(after, a.sample_rate, a.n_fft, a.hop_length, cutoff)
    out["direct"] = {"below": level_change(lo0, lo1), "above": level_change(hi0, hi1),
                     "share_below_before": float((lo0 / (lo0 + hi0)).mean())}
    device = synth.device
    visual = test.logits if synth.cfg.diffusion.visual_input == "logits" else test.nu
    specs = []
    with torch.no_grad():
        for md, g, w in ((modes, gamma, weight), (new_modes, new_gamma, new_weight)):
            inp = {"freq": md.freq, "power": md.power, "decay": md.decay, "res_weight": w, "res_decay": g}
            mu = physics_latents(synth.diffusion, {k: v.float() for k, v in inp.items()})  # (N, L)
            specs.append(synth.sample(assemble_condition(synth.diffusion, visual.to(device), mu), opts,
                                      progress=progress))  # (N, 1, F, N): the same noise both times
    lo0, hi0 = spectrogram_band_energies(specs[0], a, cutoff)
    lo1, hi1 = spectrogram_band_energies(specs[1], a, cutoff)
    out["diffusion"] = {"below": level_change(lo0, lo1), "above": level_change(hi0, hi1),
                        "share_below_before": float((lo0 / (lo0 + hi0)).mean()),
                        "share_below_after": float((lo1 / (lo1 + hi1)).mean())}
    return out


def _ci(x: dict[str, Any], key: str = "rate") -> str:
    lo, hi = x["ci"]
    return f"{100 * x[key]:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]" if x.get(key) is not None else "—"


def _db(x: dict[str, Any]) -> str:
    return f"{x['mean_db']:+.1f} [{x['ci_db'][0]:+.1f}, {x['ci_db'][1]:+.1f}] (median {x['median_db']:+.1f})"


def study_markdown(study: dict[str, Any]) -> str:
    """The study's tables (Markdown), as ``docs/results.md`` quotes them."""
    lines = [f"Editing study: {study['clips']} test clips, diffusion run `{study['diffusion_run']}`, "
             f"{study['sampler']}, classifier `{study['classifier_run']}`.", ""]
    if "fix_material" in study:
        fm = study["fix_material"]
        lines += ["### Fix the physics priors to another material", "",
                  "Share (%) of the test clips *not* of the target material that the metric classifier assigns to it; "
                  "Wilson 95 % intervals. *Before*: the retrieved priors (no edit), same sampling noise. *Real recall*: "
                  "the classifier on real test recordings of that material (its ceiling).", "",
                  "| target material | training clips | after edit (%) | before (%) | real recall (%) |",
                  "|---|---|---|---|---|"]
        for r in fm["rows"]:
            rr = r["real_recall"]
            real = _ci(rr) if rr["rate"] is not None else "— (no test clip)"
            lines.append(f"| {r['material']} | {r['training_clips']} | {_ci(r['after'])} | {_ci(r['before'])} | {real} |")
        p = fm["pooled"]
        lines += [f"| **pooled** | | {_ci(p['after'])} | {_ci(p['before'])} | |", "",
                  f"Chance (a uniform guess among the {len(fm['rows'])} targets): {100 * fm['chance']:.1f} %.", ""]
    if "remove_low" in study:
        rl = study["remove_low"]
        lines += [f"### Remove low-frequency modes (below {rl['cutoff_hz']:.0f} Hz)", "",
                  f"Per clip 10 log10(after / before) of the spectral energy below and above the cutoff, mean over "
                  f"{rl['clips']} clips [95 % bootstrap interval]; {rl['muted_modes_per_clip']:.1f} modes muted per clip.",
                  "", "| path | energy below cutoff (dB) | energy above cutoff (dB) | share below, before |",
                  "|---|---|---|---|"]
        for path, label in (("direct", "direct modal + residual (no peak normalisation)"),
                            ("diffusion", "diffusion (ours), edited mu, same noise")):
            x = rl[path]
            lines.append(f"| {label} | {_db(x['below'])} | {_db(x['above'])} | {100 * x['share_below_before']:.1f} % |")
        lines.append("")
    return "\n".join(lines)


def run_study(args: Any, run: Path) -> dict[str, Any]:
    """The study of ``physdiff edit --study`` on the diffusion run ``run``; writes ``study.json`` / ``study.md``."""
    from physdiff.data.labels import GREATEST_HITS_MATERIALS
    from physdiff.fileio import atomic_write_json, atomic_write_text
    from physdiff.inference.load import load_classifier, load_run_config
    from physdiff.inference.sampling import resolve_options
    from physdiff.inference.synthesizer import Synthesizer
    from physdiff.stages import stage_run_dir
    from physdiff.stages.clips import load_split

    if not args.fix_material and args.remove_below_hz is None:
        raise PhysdiffError("--study measures --fix-material MATERIAL (or all) and/or --remove-below-hz HZ")
    cfg = load_run_config(run)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    synth = Synthesizer.from_run(run, device, with_video=False)
    opts = resolve_options(cfg.sampling, steps=args.steps, seed=args.seed)
    test = load_split(cfg, args.split)
    if args.clips and args.clips < len(test.keys):  # the first N clips in shard order (reproducible)
        import dataclasses

        n = args.clips
        test = dataclasses.replace(test, keys=test.keys[:n], labels=test.labels[:n], audio=test.audio[:n],
                                   nu=test.nu[:n], logits=test.logits[:n], modes=test.modes[:n], extra={})
    clf_run = stage_run_dir(cfg, "classifier")
    study: dict[str, Any] = {"diffusion_run": run.name, "split": args.split, "clips": len(test.keys),
                             "sampler": opts.describe(synth.num_timesteps), "classifier_run": clf_run.name}
    t0 = time.time()
    if args.fix_material:
        clf, _info = load_classifier(clf_run, device)
        names = list(GREATEST_HITS_MATERIALS) if args.fix_material == "all" else [args.fix_material]
        study["fix_material"] = fix_material_study(cfg, synth, test, clf, [material_index(m) for m in names], opts,
                                                   progress=True)
    if args.remove_below_hz is not None:
        if args.remove_below_hz <= 0:
            raise PhysdiffError(f"--remove-below-hz must be > 0, got {args.remove_below_hz}")
        study["remove_low"] = remove_low_study(cfg, synth, test, args.remove_below_hz, opts)
    study["seconds"] = round(time.time() - t0, 1)
    out = Path(args.out)
    atomic_write_json(out / "study.json", study)
    md = study_markdown(study)
    atomic_write_text(out / "study.md", md + "\n")
    print(md)
    print(f"[edit-study] {out / 'study.json'} ({study['seconds']} s)")
    return study
