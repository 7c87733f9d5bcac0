"""``physdiff edit``: edit the interpretable physics priors of a clip and hear it, directly and through the model.

    physdiff edit --clip 2015-02-16-16-49-06_36573 --edit freq_scale=1.25 --edit decay_scale=0.5 --out edits/
    physdiff edit --clip KEY --edits '{"mute_hz": [2000, 4000], "residual_gain_db": -6}' --out edits/
    physdiff edit --video clip.mp4 --onset 0.8 --edit freq_scale=0.8 --out edits/        # a retrieved mu
    physdiff edit --clip KEY --edit freq_scale=1.2 --run-from data/runs/diffusion-ours-0123456789 --out edits/

The two edits of the paper's project page have their own flags, for one clip or measured over the test clips:

    physdiff edit --clip KEY --fix-material wood --out edits/       # the priors of the nearest wood training clip
    physdiff edit --clip KEY --remove-below-hz 500 --out edits/     # = --edit mute_hz=0,500
    physdiff edit --study --fix-material all --remove-below-hz 500 --out study/   # their measured effects

(``python cluster/edit.py ...`` is the same command.) The clip's priors -- modes (f, p, lambda) from its
shard, residual (w, gamma) from the prior run's export -- are edited (``physdiff.eval.editing.EditSpec``:
freq_scale, decay_scale, residual_decay_scale, mute_hz, modal_gain_db, residual_gain_db) and the sound is
produced

1. **directly**: modal (eq. 4) + residual (eqs. 5-6) resynthesis of the original and the edited priors
   (``direct_before.wav`` / ``direct_after.wav`` / ``direct_spectrogram.png``);
2. **by the diffusion model** ("ours") conditioned on the physics latent mu of the original and of the
   edited priors, with the clip's nu and the same noise (``diffusion_before.wav`` / ``diffusion_after.wav``
   / ``diffusion_spectrogram.png``).

With ``--video`` + ``--onset`` there is no recording: nu of the video's frames retrieves the nearest
training clip (as at inference) and *its* priors are edited. ``--fix-material M`` replaces the priors by those
of the training clip of material M whose nu is nearest to the clip's (any ``--edit`` then applies to them);
``--remove-below-hz F`` mutes the modes below F and the residual bands overlapping [0, F]. ``--study``
(:mod:`physdiff.cli.edit_study`) measures both over the test clips instead of editing one. The "ours" run is found as ``generate``
finds its run (physdiff.cli.runs). ``edit.json`` records the edit and its sources.
"""


from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from physdiff.errors import DataError, PhysdiffError


def parse_edits(pairs: list[str], blob: str | None, allow_empty: bool = False) -> dict[str, Any]:
    """``key=value`` pairs (value: a number, or comma-separated numbers for mute_hz) and/or a JSON object."""
    try:
        out: dict[str, Any] = json.loads(blob) if blob else {}
    except json.JSONDecodeError as e:
        raise PhysdiffError(f"--edits must be a JSON object, e.g. '{{\"freq_scale\": 1.2}}': {e}") from None
    if not isinstance(out, dict):
        raise PhysdiffError(f"--edits must be a JSON object, e.g. '{{\"freq_scale\": 1.2}}', got {blob!r}")
    for p in pairs:
        if "=" not in p:
            raise PhysdiffError(f"--edit takes key=value, got {p!r}")
        k, v = p.split("=", 1)
        k = k.strip()
        try:
            vals = [float(x) for x in v.replace(";", ",").split(",") if x.strip()]
        except ValueError:
            raise PhysdiffError(f"--edit {k}: {v!r} is not a number (or comma-separated numbers)") from None
        if k == "mute_hz":
            if len(vals) % 2:
                raise PhysdiffError("--edit mute_hz takes lo,hi pairs, e.g. mute_hz=2000,4000")
            out.setdefault("mute_hz", [])
            if out["mute_hz"] and not isinstance(out["mute_hz"][0], (list, tuple)):
                out["mute_hz"] = [out["mute_hz"]]
            out["mute_hz"] += [vals[i : i + 2] for i in range(0, len(vals), 2)]
        else:
            if len(vals) != 1:
                raise PhysdiffError(f"--edit {k} takes one number, got {v!r}")
            out[k] = vals[0]
    if not out and not allow_empty:
        raise PhysdiffError("no edit given: use --edit key=value (freq_scale, decay_scale, mute_hz, ...), --edits JSON, "
                            "--fix-material MATERIAL or --remove-below-hz HZ")
    return out


def _check_finite(clips: dict[str, Any], title: str, out: Path) -> None:
    """Refuse (before writing any of them) clips holding NaN or inf: a silent wrong result is worse than an error."""
    import torch

    for name, x in clips.items():
        if not bool(torch.isfinite(x).all()):
            raise PhysdiffError(f"edit {title or '(none)'}: the {name} clip is not finite; nothing more written to {out}")


def add_low_cut(edits: dict[str, Any], hz: float | None) -> dict[str, Any]:
    """``--remove-below-hz HZ``: the mute range [0, HZ] added to the edit's ``mute_hz``."""
    if hz is None:
        return edits
    if not hz > 0:
        raise PhysdiffError(f"--remove-below-hz must be > 0, got {hz}")
    out = dict(edits)
    ranges = out.get("mute_hz") or []
    if ranges and not isinstance(ranges[0], (list, tuple)):
        ranges = [ranges]
    out["mute_hz"] = [*ranges, [0.0, float(hz)]]
    return out


def material_clip(synth: Any, cfg: Any, nu: Any, material: str) -> str:
    """The training clip of ``material`` whose nu is nearest to ``nu`` (1, D): the priors ``--fix-material`` takes."""
    from physdiff.cli.edit_study import index_materials, material_index
    from physdiff.eval.edit_study import nearest_of_material

    m = material_index(material)
    mats = index_materials(synth, cfg)
    try:
        _v, rows = nearest_of_material(synth.index.keys, synth.index.values, mats, nu, m)
    except ValueError:
        raise DataError(f"--fix-material {material}: no training clip of that material in {synth.diffusion.run_dir}'s "
                        f"index") from None
    return synth.index.clip_keys[int(rows[0])]


def find_clip(cfg: Any, key: str) -> tuple[dict[str, Any], str]:
    """The shard batch entry of clip ``key`` (audio, modes, priors, nu) and its split."""
    from physdiff.artifacts import read_export
    from physdiff.data.layout import SPLITS
    from physdiff.data.reader import make_loader
    from physdiff.identity import shards_dir
    from physdiff.inference.load import upstream_run

    prior = read_export(upstream_run(cfg, "prior"), "prior").splits
    video = read_export(upstream_run(cfg, "video"), "video").splits
    for split in SPLITS:
        if split not in prior or split not in video:
            continue
        for b in make_loader(shards_dir(cfg), split, batch_size=64, mode="eval",
                             side_tables={"prior": prior[split], "video": video[split]}):
            if key in b["key"]:
                j = list(b["key"]).index(key)
                return {k: (v[j : j + 1] if hasattr(v, "shape") else [v[j]]) for k, v in b.items()}, split
    raise DataError(f"clip {key!r} is in none of the {'/'.join(SPLITS)} shards under {shards_dir(cfg)}")


def main(argv: list[str] | None = None) -> int:
    import torch

    from physdiff.cli.common import add_config_args, add_data_args, parser
    from physdiff.cli.runs import resolve_diffusion_run
    from physdiff.eval.editing import EditSpec, apply_edit, resynthesize, write_edit_outputs
    from physdiff.inference.conditioning import assemble_condition, physics_latents
    from physdiff.inference.load import load_run_config
    from physdiff.inference.media import clip_frames
    from physdiff.inference.sampling import sample_spectrograms
    from physdiff.inference.synthesizer import Synthesizer
    from physdiff.physics import Modes, ResidualNoise, band_edges, spectrogram_to_audio

    ap = parser("physdiff edit", __doc__)
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--clip", help="a clip key of the shards (<video id>_<onset sample>)")
    src.add_argument("--video", help="a video: the training clip retrieved from its frames at --onset is edited")
    src.add_argument("--study", action="store_true",
                     help="measure --fix-material / --remove-below-hz over the test clips (study.json, study.md)")
    ap.add_argument("--onset", type=float, default=None, help="with --video: the onset time (s)")
    ap.add_argument("--edit", action="append", default=[], metavar="KEY=VALUE", help="an edit (repeatable)")
    ap.add_argument("--edits", default=None, help="edits as a JSON object")
    ap.add_argument("--fix-material", default=None, metavar="MATERIAL",
                    help="use the priors of the nearest (by nu) training clip of this material (--study: or 'all')")
    ap.add_argument("--remove-below-hz", type=float, default=None, metavar="HZ",
                    help="mute the modes below HZ (and the residual bands overlapping [0, HZ])")
    ap.add_argument("--clips", type=int, default=0, help="--study: only the first N clips of the split (0 = all)")
    ap.add_argument("--split", default="test", choices=("train", "val", "test"), help="--study: the clips measured")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--run-from", default=None, metavar="DIR", help="an 'ours' diffusion run folder, or a data folder")
    ap.add_argument("--steps", type=int, default=None, help="sampling steps of the diffusion path (sampling.steps)")
    ap.add_argument("--seed", type=int, default=0, help="the sampling noise seed (sampling.seed; default: 0)")
    ap.add_argument("--no-diffusion", action="store_true", help="only the direct resynthesis")
    add_data_args(ap, tracking=False)
    add_config_args(ap, default_preset=None)
    args = ap.parse_args(argv)
    from physdiff.cli.common import check_override_tokens
    from physdiff.cli.generate import check_sampling_flags

    check_override_tokens(args.overrides)
    check_sampling_flags(args)  # --steps / --seed, before any model loads
    if args.study:
        from physdiff.cli.edit_study import run_study

        run_study(args, resolve_diffusion_run(args, variant="ours"))
        return 0
    if not (args.clip or args.video):
        raise PhysdiffError("name what to edit: --clip KEY or --video FILE --onset S (or --study for the test clips)")
    if args.fix_material == "all":
        raise PhysdiffError("--fix-material all is for --study; name one material for --clip / --video")
    edits = add_low_cut(parse_edits(args.edit, args.edits, allow_empty=bool(args.fix_material or args.remove_below_hz)),
                        args.remove_below_hz)
    spec = EditSpec.from_dict(edits)
    if args.video and args.onset is None:
        raise PhysdiffError("--video needs --onset (seconds)")
    out = Path(args.out)

    run = resolve_diffusion_run(args, variant="ours")  # the physics latent exists only in "ours"
    cfg = load_run_config(run)
    need_synth = not args.no_diffusion or args.video or args.fix_material
    synth = Synthesizer.from_run(run, "cpu", with_video=bool(args.video)) if need_synth else None
    nu = None
    if args.video:
        vc = clip_frames(args.video, [args.onset], synth.video_cfg.video.num_frames, synth.video_cfg.shards.frame_size)
        nu, _ = synth.encode_frames(vc.frames)  # (1, D_nu)
        _c, keys, _d = synth.conditions(nu)
        key, source = keys[0], f"retrieved for {args.video} @ {args.onset:.3f} s"
    else:
        key, source = args.clip, "shards"
    clip, split = find_clip(cfg, key)
    if nu is None:
        nu = torch.as_tensor(clip["video/nu"]).float()  # (1, D_nu)
    a, ph = cfg.audio, cfg.physics
    m = torch.as_tensor(clip["modes"]).float()  # (1, 3, D)
    modes = Modes(m[:, 0], m[:, 1], m[:, 2])
    weight, gamma = torch.as_tensor(clip["prior/weight"]).float(), torch.as_tensor(clip["prior/gamma"]).float()  # (1, M)
    edit_modes, edit_gamma, edit_weight = modes, gamma, weight  # the priors the edit applies to
    fixed = None
    if args.fix_material:
        fixed = material_clip(synth, cfg, nu, args.fix_material)
        other, _split = find_clip(cfg, fixed)
        om = torch.as_tensor(other["modes"]).float()  # (1, 3, D)
        edit_modes = Modes(om[:, 0], om[:, 1], om[:, 2])
        edit_weight = torch.as_tensor(other["prior/weight"]).float()  # (1, M)
        edit_gamma = torch.as_tensor(other["prior/gamma"]).float()
    residual = ResidualNoise(weight.shape[1], a.sample_rate, a.num_samples, ph.residual_fmin, ph.residual_spacing,
                             ph.residual_seed) if weight.shape[1] else None
    edges = band_edges(weight.shape[1], a.sample_rate, ph.residual_fmin, ph.residual_spacing) if weight.shape[1] else None
    new_modes, new_gamma, new_weight = apply_edit(edit_modes, edit_gamma, edit_weight, spec, a.sample_rate, edges,
                                                  a.floor_db)
    with torch.no_grad():
        nm = cfg.prior.normalize_modal  # add the residual as the prior stage did in training
        before = resynthesize(modes, gamma, weight, residual, a.sample_rate, a.num_samples, normalize_modal=nm)  # (1, T)
        after = resynthesize(new_modes, new_gamma, new_weight, residual, a.sample_rate, a.num_samples,
                             normalize_modal=nm)  # (1, T)
    title = ", ".join([f"{k}={v}" for k, v in spec.to_dict().items() if v not in (None, 1.0, 0.0, [])]
                      + ([f"priors of {args.fix_material} clip {fixed}"] if fixed else []))
    _check_finite({"direct_before": before, "direct_after": after}, title, out)
    paths = {"direct": write_edit_outputs(out, "direct", before, after, a.sample_rate, a.n_fft, a.hop_length, title)}
    if not args.no_diffusion:
        from physdiff.inference.sampling import resolve_options

        opts = resolve_options(cfg.sampling, steps=args.steps, seed=args.seed)
        latents, wavs = [], []
        with torch.no_grad():
            for md, g, w in ((modes, gamma, weight), (new_modes, new_gamma, new_weight)):
                inp = {"freq": md.freq, "power": md.power, "decay": md.decay, "res_weight": w, "res_decay": g}
                latents.append(physics_latents(synth.diffusion, inp))  # (1, L)
            for mu in latents:
                c = assemble_condition(synth.diffusion, nu, mu)  # (1, C)
                x = sample_spectrograms(synth.diffusion, c, opts)  # (1, 1, F, N): the same noise (opts.seed) for both
                wavs.append(spectrogram_to_audio(x, a))  # (1, T)
        _check_finite({"diffusion_before": wavs[0], "diffusion_after": wavs[1]}, title, out)
        paths["diffusion"] = write_edit_outputs(out, "diffusion", wavs[0], wavs[1], a.sample_rate, a.n_fft,
                                                a.hop_length, f"diffusion ({opts.describe(synth.num_timesteps)}): {title}")
        paths["mu_shift"] = float((latents[1] - latents[0]).norm())
    record = {"clip": key, "split": split, "source": source, "edit": spec.to_dict(), "diffusion_run": str(run),
              "fix_material": {"material": args.fix_material, "clip": fixed} if fixed else None,
              "outputs": {k: ({n: str(p) for n, p in v.items()} if isinstance(v, dict) else v) for k, v in paths.items()}}
    from physdiff.fileio import atomic_write_json

    atomic_write_json(out / "edit.json", record)
    print(json.dumps(record, indent=2))
    return 0
