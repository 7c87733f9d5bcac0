"""Sound editing on the interpretable physics priors: before/after audio and spectrograms, two ways.

    python cluster/edit.py --clip 2015-02-16-16-49-06_36573 --edit freq_scale=1.25 --edit decay_scale=0.5 --out edits/
    python cluster/edit.py --clip KEY --edits '{"mute_hz": [2000, 4000], "residual_gain_db": -6}' --preset tiny --out edits/
    python cluster/edit.py --video clip.mp4 --onset 0.8 --edit freq_scale=0.8 --preset tiny --out edits/   # a retrieved mu

The clip's priors -- modes (f, p, lambda) from its shard, residual (w, gamma) from the prior run's export --
are edited (``physdiff.eval.editing.EditSpec``: freq_scale, decay_scale, residual_decay_scale, mute_hz,
modal_gain_db, residual_gain_db) and the sound is produced

1. **directly**: modal (eq. 4) + residual (eqs. 5-6) resynthesis of the original and the edited priors
   (``direct_before.wav`` / ``direct_after.wav`` / ``direct_spectrogram.png``);
2. **by the diffusion model** ("ours") conditioned on the physics latent mu of the original and of the
   edited priors, with the clip's nu and the same noise (``diffusion_before.wav`` / ``diffusion_after.wav``
   / ``diffusion_spectrogram.png``).

With ``--video`` + ``--onset`` there is no recording: nu of the video's frames retrieves the nearest
training clip (as at inference) and *its* priors are edited. ``edit.json`` records the edit and its sources.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from physdiff.config import add_config_args, config_from_args  # noqa: E402
from physdiff.errors import DataError, PhysdiffError, run_cli  # noqa: E402


def parse_edits(pairs: list[str], blob: str | None) -> dict[str, Any]:
    """``key=value`` pairs (value: a number, or comma-separated numbers for mute_hz) and/or a JSON object."""
    try:
        out: dict[str, Any] = json.loads(blob) if blob else {}
    except json.JSONDecodeError as e:
        raise PhysdiffError(f"--edits must be a JSON object, e.g. '{{\"freq_scale\": 1.2}}': {e}") from None
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
    if not out:
        raise PhysdiffError("no edit given: use --edit key=value (freq_scale, decay_scale, mute_hz, ...) or --edits JSON")
    return out


def find_clip(cfg: Any, key: str) -> tuple[dict[str, Any], str]:
    """The shard batch entry of clip ``key`` (audio, modes, priors, nu) and its split."""
    from physdiff.data.reader import make_loader
    from physdiff.stages import shards_dir
    from physdiff.stages.diffusion import upstream_exports

    prior, video = upstream_exports(cfg, "prior"), upstream_exports(cfg, "video")
    for split in ("train", "test"):
        if split not in prior or split not in video:
            continue
        for b in make_loader(shards_dir(cfg), split, batch_size=64, mode="eval",
                             side_tables={"prior": prior[split], "video": video[split]}):
            if key in b["key"]:
                j = list(b["key"]).index(key)
                return {k: (v[j : j + 1] if hasattr(v, "shape") else [v[j]]) for k, v in b.items()}, split
    raise DataError(f"clip {key!r} is in neither the train nor the test shards under {shards_dir(cfg)}")


def main(argv: list[str] | None = None) -> int:
    import torch

    from physdiff.eval.editing import EditSpec, apply_edit, resynthesize, write_edit_outputs
    from physdiff.physics import Modes, ResidualNoise, band_edges
    from physdiff.stages.diffusion import assemble_condition, physics_latents, sample_spectrograms, spectrogram_to_audio
    from physdiff.stages.generate import SampleOptions, Synthesizer, clip_frames
    from physdiff.stages.index import diffusion_run_for

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--clip", help="a clip key of the shards (<video id>_<onset sample>)")
    src.add_argument("--video", help="a video: the training clip retrieved from its frames at --onset is edited")
    ap.add_argument("--onset", type=float, default=None, help="with --video: the onset time (s)")
    ap.add_argument("--edit", action="append", default=[], metavar="KEY=VALUE", help="an edit (repeatable)")
    ap.add_argument("--edits", default=None, help="edits as a JSON object")
    ap.add_argument("--out", required=True)
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--steps", type=int, default=None, help="DDIM steps of the diffusion path (default eval.generate_steps)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-diffusion", action="store_true", help="only the direct resynthesis")
    add_config_args(ap)
    args = ap.parse_args(argv)
    cfg = config_from_args(args, {"paths.data_root": args.data_root})
    spec = EditSpec.from_dict(parse_edits(args.edit, args.edits))
    if args.video and args.onset is None:
        raise PhysdiffError("--video needs --onset (seconds)")
    out = Path(args.out)

    run = diffusion_run_for(cfg, "ours")  # the physics latent exists only in "ours"
    synth = None if args.no_diffusion and not args.video else Synthesizer.from_run(run, "cpu", with_video=bool(args.video))
    nu = None
    if args.video:
        vc = clip_frames(args.video, [args.onset], synth.video_cfg.video.num_frames, synth.video_cfg.shards.frame_size)
        nu, _ = synth.encode_frames(vc.frames)  # (1, D_nu)
        _c, keys, _d = synth.conditions(nu)
        key, source = keys[0], f"retrieved for {args.video} @ {args.onset:.3f} s"
    else:
        key, source = args.clip, "shards"
    clip, split = find_clip(cfg if synth is None else synth.cfg, key)
    if nu is None:
        nu = torch.as_tensor(clip["video/nu"]).float()  # (1, D_nu)
    a = cfg.audio if synth is None else synth.cfg.audio
    ph = cfg.physics if synth is None else synth.cfg.physics
    m = torch.as_tensor(clip["modes"]).float()  # (1, 3, D)
    modes = Modes(m[:, 0], m[:, 1], m[:, 2])
    weight, gamma = torch.as_tensor(clip["prior/weight"]).float(), torch.as_tensor(clip["prior/gamma"]).float()  # (1, M)
    residual = ResidualNoise(weight.shape[1], a.sample_rate, a.num_samples, ph.residual_fmin, ph.residual_spacing,
                             ph.residual_seed) if weight.shape[1] else None
    edges = band_edges(weight.shape[1], a.sample_rate, ph.residual_fmin, ph.residual_spacing) if weight.shape[1] else None
    new_modes, new_gamma, new_weight = apply_edit(modes, gamma, weight, spec, a.sample_rate, edges, a.floor_db)
    with torch.no_grad():
        before = resynthesize(modes, gamma, weight, residual, a.sample_rate, a.num_samples)  # (1, T)
        after = resynthesize(new_modes, new_gamma, new_weight, residual, a.sample_rate, a.num_samples)  # (1, T)
    title = ", ".join(f"{k}={v}" for k, v in spec.to_dict().items() if v not in (None, 1.0, 0.0, []))
    paths = {"direct": write_edit_outputs(out, "direct", before, after, a.sample_rate, a.n_fft, a.hop_length, title)}
    if not args.no_diffusion:
        opts = SampleOptions.for_generation(synth.cfg, steps=args.steps, seed=args.seed)
        latents, wavs = [], []
        with torch.no_grad():
            for md, g, w in ((modes, gamma, weight), (new_modes, new_gamma, new_weight)):
                inp = {"freq": md.freq, "power": md.power, "decay": md.decay, "res_weight": w, "res_decay": g}
                latents.append(physics_latents(synth.diffusion, inp))  # (1, L)
            for mu in latents:
                c = assemble_condition(synth.diffusion, nu, mu)  # (1, C)
                x = sample_spectrograms(synth.diffusion, c, generator=torch.Generator().manual_seed(args.seed),
                                        sampler=opts.sampler, steps=opts.steps, eta=opts.eta,
                                        guidance_scale=opts.guidance_scale)  # (1, 1, F, N): same noise for both
                wavs.append(spectrogram_to_audio(x, a))  # (1, T)
        paths["diffusion"] = write_edit_outputs(out, "diffusion", wavs[0], wavs[1], a.sample_rate, a.n_fft,
                                                a.hop_length, f"diffusion ({opts.describe(0)}): {title}")
        paths["mu_shift"] = float((latents[1] - latents[0]).norm())
    record = {"clip": key, "split": split, "source": source, "edit": spec.to_dict(), "diffusion_run": str(run),
              "outputs": {k: ({n: str(p) for n, p in v.items()} if isinstance(v, dict) else v) for k, v in paths.items()}}
    out.mkdir(parents=True, exist_ok=True)
    (out / "edit.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    run_cli(lambda: main(sys.argv[1:]))
