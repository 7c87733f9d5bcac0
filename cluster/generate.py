"""Generate impact sounds for one silent video: frames -> nu -> retrieved mu -> diffusion -> WAVs + MP4.

    python cluster/generate.py --video clip.mp4 --onsets 0.5,1.2 --preset tiny --out out/
    python cluster/generate.py --video clip.mp4 --times clip_times.txt --preset tiny --out out/
    python cluster/generate.py --video clip.mp4 --times t.txt --sampler ddpm --steps 0 --out out/      # DDPM, all T steps
    python cluster/generate.py --video clip.mp4 --onsets 0.8 --steps 25 --guidance 2.0 --eta 0.0 \\
        --run-from data/runs/diffusion-0123456789 --out out/                                         # a given run

The diffusion run is ``--run-from`` (a diffusion run folder, or a data folder whose run for this config is
used), else the run of the resolved config (``--preset`` + ``key=value`` overrides, ``--data-root``). Sampler
defaults: ``eval.generate_sampler`` (DDIM), ``eval.generate_steps``, ``eval.generate_eta`` (the sigma
temperature of eq. 9), ``eval.guidance_scale``. Writes per clip a WAV at ``audio.sample_rate``, the full
``soundtrack.wav``, ``<video>_generated.mp4`` (video stream copied + AAC soundtrack), ``comparison.png``
(vs ``--truth`` or a sibling ``.wav`` when present) and ``generation.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from physdiff.config import add_config_args, config_from_args  # noqa: E402
from physdiff.errors import PhysdiffError, run_cli  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", required=True, help="the (silent) video file")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--times", help="onsets file: 'time material action reaction' lines or one time (s) per line")
    g.add_argument("--onsets", help="onset times in seconds, comma-separated, e.g. 0.5,1.2")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--run-from", default=None, help="a diffusion run folder, or a data folder (default: this config's run)")
    ap.add_argument("--data-root", default=None, help="data folder (default: $PHYSDIFF_DATA or ./data)")
    ap.add_argument("--sampler", choices=("ddim", "ddpm"), default=None)
    ap.add_argument("--steps", type=int, default=None, help="sampling steps (0 = all T)")
    ap.add_argument("--eta", "--sigma", dest="eta", type=float, default=None,
                    help="noise temperature: sigma_t = eta * sqrt(posterior variance), eq. 9 (DDIM default 0, DDPM 1)")
    ap.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale (1 = none)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--truth", default=None, help="the recording, for the comparison figure (default: sibling .wav)")
    ap.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    ap.add_argument("--no-progress", action="store_true")
    add_config_args(ap)
    return ap


def resolve_run(args: argparse.Namespace, cfg) -> Path:
    from physdiff.stages.index import diffusion_run_for

    if args.run_from:
        p = Path(args.run_from).expanduser().resolve()
        if (p / "config.json").is_file() and (p / "export").is_dir():
            return p
        if (p / "runs").is_dir():  # a data folder: this config's run inside it
            from physdiff.config import apply_overrides

            apply_overrides(cfg, {"paths.data_root": str(p)})
            return diffusion_run_for(cfg)
        raise PhysdiffError(f"--run-from {p} is neither a diffusion run folder (config.json + export/) nor a data folder (runs/)")
    return diffusion_run_for(cfg)


def main(argv: list[str] | None = None) -> int:
    import torch

    from physdiff.stages.generate import SampleOptions, Synthesizer, generate_video, parse_onsets, read_onsets

    args = build_parser().parse_args(argv)
    cfg = config_from_args(args, {"paths.data_root": args.data_root})
    onsets = read_onsets(args.times) if args.times else parse_onsets(args.onsets)
    from physdiff.data.media import video_fps

    video_fps(args.video)  # fail fast (one line naming the file) on a missing or unreadable video, before loading models
    run = resolve_run(args, cfg)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    synth = Synthesizer.from_run(run, device)
    sampler = args.sampler or synth.cfg.eval.generate_sampler
    eta = args.eta if args.eta is not None else (None if args.sampler is None else (1.0 if sampler == "ddpm" else 0.0))
    opts = SampleOptions.for_generation(synth.cfg, sampler=args.sampler, steps=args.steps, eta=eta,
                                        guidance_scale=args.guidance, seed=args.seed, batch_size=args.batch_size)
    print(f"{len(onsets)} onsets; {synth.variant} model {run}; {opts.describe(synth.diffusion.model.schedule.num_timesteps)}",
          flush=True)
    s = generate_video(synth, args.video, onsets, args.out, opts, truth_wav=args.truth, progress=not args.no_progress)
    out = Path(args.out)
    print(f"wrote {len(s['clips'])} clips, {out / s['soundtrack']}, {out / s['mp4']}, {out / s['figure']}")
    return 0


if __name__ == "__main__":
    run_cli(lambda: main(sys.argv[1:]))
