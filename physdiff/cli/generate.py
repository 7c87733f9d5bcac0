"""``physdiff generate``: impact sounds for one silent video: frames -> nu -> retrieved mu -> diffusion -> WAVs + MP4.

    physdiff generate --video clip.mp4 --onsets 0.5,1.2 --out out/
    physdiff generate --video clip.mp4 --onsets auto --out out/                     # strikes found in the video itself
    physdiff generate --video clip.mp4 --times clip_times.txt --out out/
    physdiff generate --video clip.mp4 --onsets 0.8 --sampler ddim --steps 25 --guidance 2.0 --eta 0.0 \\
        --run-from data/runs/diffusion-ours-0123456789 --out out/                  # a given run, from any folder
    physdiff generate --video clip.mp4 --onsets 0.8 --data-root /shared/physdiff --preset tiny --out out/

(``python cluster/generate.py ...`` is the same command.) The trained run: ``--run-from`` (a diffusion run
folder, or a data folder), else the run of ``--preset`` / overrides in ``--data-root``, else the one finished
diffusion run there (physdiff.cli.runs). Sampling: the run's ``sampling`` section (its preset's), with
``--sampler``, ``--steps`` (0 = all T), ``--eta`` (the sigma temperature of eq. 9), ``--guidance``,
``--seed`` replacing single fields. Writes per clip a WAV at ``audio.sample_rate``, the full
``soundtrack.wav``, ``<video>_generated.mp4`` (video stream copied + AAC soundtrack), ``comparison.png``
(vs ``--truth`` or a sibling ``.wav`` when present) and ``generation.json``. ``--onsets auto`` finds the
strikes in the video (physdiff.onsets: the stick's motion cusps, with a confidence each, recorded in
``generation.json``); a video with no detectable strike is an error and nothing is generated.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any


def build_parser() -> Any:
    from physdiff.cli.common import add_config_args, add_data_args, parser

    ap = parser("physdiff generate", __doc__)
    ap.add_argument("--video", required=True, help="the (silent) video file")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--times", help="onsets file: 'time material action reaction' lines or one time (s) per line")
    g.add_argument("--onsets", help="onset times in seconds, comma-separated (e.g. 0.5,1.2), or 'auto': find the "
                                    "strikes in the video")
    ap.add_argument("--onset-confidence", type=float, default=None, metavar="C",
                    help="with --onsets auto: the smallest detection confidence kept (default 0.5)")
    ap.add_argument("--onset-direction", choices=("down", "up", "left", "right"), default=None,
                    help="with --onsets auto: the strike direction in the picture (default down)")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--run-from", default=None, metavar="DIR", help="a diffusion run folder, or a data folder")
    ap.add_argument("--sampler", choices=("ddim", "ddpm"), default=None, help="sampling.sampler (default: the run's)")
    ap.add_argument("--steps", type=int, default=None, help="sampling.steps (0 = all T steps)")
    ap.add_argument("--eta", "--sigma", dest="eta", type=float, default=None,
                    help="sampling.eta: sigma_t = eta * sqrt(posterior variance), eq. 9 (with --sampler: ddim 0, ddpm 1)")
    ap.add_argument("--guidance", type=float, default=None, help="sampling.guidance_scale: classifier-free guidance (1 = none)")
    ap.add_argument("--seed", type=int, default=None, help="the sampling noise seed (sampling.seed)")
    ap.add_argument("--batch-size", type=int, default=None, help="clips per sampler call (sampling.batch_size)")
    ap.add_argument("--truth", default=None, help="the recording, for the comparison figure (default: sibling .wav)")
    ap.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_data_args(ap, tracking=False)
    add_config_args(ap, default_preset=None)
    return ap


def sampling_from_args(args: Any, base: Any) -> Any:
    """The run's ``sampling`` section with the flags and ``sampling.*`` overrides applied."""
    from physdiff.inference.sampling import resolve_options

    opts = base.copy([o for o in args.overrides if o.startswith("sampling.")]).sampling
    eta = args.eta
    if eta is None and args.sampler is not None:
        eta = 1.0 if args.sampler == "ddpm" else 0.0
    return resolve_options(opts, sampler=args.sampler, steps=args.steps, eta=eta, guidance_scale=args.guidance,
                           seed=args.seed, batch_size=args.batch_size)


def check_sampling_flags(args: Any) -> None:
    """The sampling flags on their own (NaN guidance, a negative step count...): one-line errors before any model loads."""
    from physdiff.inference.config import SamplingConfig
    from physdiff.inference.sampling import resolve_options

    resolve_options(SamplingConfig(), sampler=getattr(args, "sampler", None), steps=args.steps, eta=getattr(args, "eta", None),
                    guidance_scale=getattr(args, "guidance", None), seed=args.seed,
                    batch_size=getattr(args, "batch_size", None))


def main(argv: list[str] | None = None) -> int:
    import torch

    from physdiff.cli.runs import resolve_diffusion_run
    from physdiff.data.media import video_fps
    from physdiff.inference.generate import generate_video
    from physdiff.inference.synthesizer import Synthesizer
    from physdiff.onsets import DetectorSettings, resolve_onsets

    from physdiff.cli.common import check_override_tokens

    args = build_parser().parse_args(argv)
    check_override_tokens(args.overrides)
    check_sampling_flags(args)
    settings = DetectorSettings()
    if args.onset_confidence is not None:
        settings = dataclasses.replace(settings, min_confidence=args.onset_confidence)
    if args.onset_direction is not None:
        settings = dataclasses.replace(settings, direction=args.onset_direction)
    # explicit onsets are checked first (no video read); detection reads the video (unreadable / no strike: stop here)
    found = resolve_onsets(args.video, args.onsets, times=args.times, settings=settings)
    onsets = found.times
    video_fps(args.video)  # fail fast (one line naming the file) on a missing or unreadable video, before loading models
    if found.source == "detected":
        print(f"{len(onsets)} strikes found in {args.video}: " + ", ".join(
            f"{t:.3f} s ({c:.2f})" for t, c in zip(onsets, found.confidences)), flush=True)
    run = resolve_diffusion_run(args)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    synth = Synthesizer.from_run(run, device)
    opts = sampling_from_args(args, synth.cfg)
    print(f"{len(onsets)} onsets; {synth.variant} model {run} (preset {synth.cfg.preset}); "
          f"{opts.describe(synth.num_timesteps)}", flush=True)
    s = generate_video(synth, args.video, onsets, args.out, opts, truth_wav=args.truth, progress=not args.no_progress,
                       onset_info=found.to_json())
    out = Path(args.out)
    print(f"wrote {len(s['clips'])} clips, {out / s['soundtrack']}, {out / s['mp4']}, {out / s['figure']}")
    return 0
