"""``physdiff listen``: the paper's human listening study (Table 2) as a command.

    physdiff listen create --study studies/s1 \\
        --run ours=data/runs/generate-ours-1a2b --run video=data/runs/generate-video-3c4d \\
        --run video_label=data/runs/generate-video_label-5e6f [--reference] [--max-videos 20] [--seed 0]
    physdiff listen serve  --study studies/s1                        # http://127.0.0.1:8000/
    physdiff listen serve  --study studies/s1 --host 0.0.0.0 --port 8080 --invite-only
    physdiff listen invite --study studies/s1 --count 20 --base-url https://study.example.org
    physdiff listen report --study studies/s1 [--json report.json]  # Table 2 (or: --report)

Bad input (a missing or unfinished run, runs with no common video, a busy port, a damaged answers
database) prints one ``error: ...`` line and exits 2. Details and how to run a study with real
participants: ``docs/listening.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from physdiff.errors import PhysdiffError


def _run_arg(text: str) -> tuple[str | None, str]:
    """``NAME=RUN_DIR`` or ``RUN_DIR`` (the run's variant names it)."""
    if "=" in text:
        name, _, path = text.partition("=")
        if not name or not path:
            raise argparse.ArgumentTypeError(f"--run {text!r}: expected NAME=RUN_DIR or RUN_DIR")
        return name, path
    return None, text


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="physdiff listen", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True, metavar="{create,serve,invite,report}")

    c = sub.add_parser("create", help="build a study folder from generate runs (media copied in, design fixed)")
    c.add_argument("--study", required=True, type=Path, help="the new study folder (must not exist)")
    c.add_argument("--run", dest="runs", action="append", type=_run_arg, required=True, metavar="[NAME=]RUN_DIR",
                   help="a finished generate run, one per method; NAME defaults to the run's variant (repeat)")
    c.add_argument("--reference", action="store_true",
                   help="add the real recording as a method ('recording'), muxed into the source video")
    c.add_argument("--ablation", default="auto", metavar="auto|none|NAME,NAME,...",
                   help="the perceptual-ablation methods: auto = the runs of variants video, video_label and ours "
                        "when all are given (default), none, or a list of method names")
    c.add_argument("--max-videos", type=int, default=None, metavar="N",
                   help="use a seeded random subset of N of the common test videos (default: all)")
    c.add_argument("--seed", type=int, default=0, help="seeds the video subset and every participant's order (default 0)")
    c.add_argument("--title", default="", help="the title participants see")
    c.add_argument("--media", choices=("link", "copy"), default="link",
                   help="hard-link the runs' mp4s into the study (default; a copy across file systems) or copy them")
    c.add_argument("--require-play", choices=("end", "start", "none"), default="end",
                   help="what a participant must do with every video before answering: play it to the end "
                        "(default), start it, or nothing")

    s = sub.add_parser("serve", help="serve the study to participants")
    s.add_argument("--study", required=True, type=Path, help="the study folder")
    s.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 for the LAN)")
    s.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0 = any free port)")
    s.add_argument("--invite-only", action="store_true",
                   help="no Start button: only links made with `listen invite` work")
    s.add_argument("--root-path", default="", metavar="/PREFIX",
                   help="the path prefix a reverse proxy serves the study under (e.g. /study)")
    s.add_argument("--log-level", default="warning", choices=("critical", "error", "warning", "info", "debug"),
                   help="uvicorn's log level (default warning)")

    i = sub.add_parser("invite", help="issue participant links (tokens) ahead of time")
    i.add_argument("--study", required=True, type=Path, help="the study folder")
    i.add_argument("--count", type=int, required=True, help="how many links")
    i.add_argument("--base-url", default="http://127.0.0.1:8000",
                   help="the address participants open, proxy prefix included (default http://127.0.0.1:8000)")

    r = sub.add_parser("report", help="print Table 2: selection rates with 95 %% intervals, ablation, agreement")
    r.add_argument("--study", required=True, type=Path, help="the study folder")
    r.add_argument("--json", type=Path, default=None, metavar="PATH", help="also write every number as JSON here")
    r.add_argument("--bootstrap", type=int, default=2000, metavar="B",
                   help="participant-bootstrap resamples for the intervals (default 2000)")
    r.add_argument("--seed", type=int, default=0, help="the bootstrap's seed (default 0)")
    r.add_argument("--complete-only", action="store_true", help="count only participants who answered every screen")
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``physdiff listen`` (argv without the program and subcommand names before it)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--report"]:  # `physdiff listen --report --study DIR` reads as `report`
        argv[0] = "report"
    args = build_parser().parse_args(argv)

    if args.command == "create":
        from physdiff.listen.study import create_study

        if args.max_videos is not None and args.max_videos < 1:
            raise PhysdiffError("--max-videos must be >= 1")
        study = create_study(args.study, args.runs, reference=args.reference, seed=args.seed,
                             max_videos=args.max_videos, ablation=args.ablation, title=args.title,
                             media_mode=args.media, require_play=args.require_play)
        print(study.root)
        return 0

    if args.command == "serve":
        from physdiff.listen.server import serve

        if not 0 <= args.port <= 65535:
            raise PhysdiffError(f"--port {args.port} is not a TCP port (0-65535)")
        if args.root_path and not args.root_path.startswith("/"):
            raise PhysdiffError(f"--root-path {args.root_path!r} must start with /")
        serve(args.study, args.host, args.port, invite_only=args.invite_only, root_path=args.root_path,
              log_level=args.log_level)
        return 0

    from physdiff.listen.store import AnswerStore
    from physdiff.listen.study import load_study

    study = load_study(args.study)
    store = AnswerStore.open(study.answers_path, study.study_id)

    if args.command == "invite":
        import secrets

        from physdiff.listen.study import participant_plan

        if args.count < 1:
            raise PhysdiffError("--count must be >= 1")
        base = args.base_url.rstrip("/")
        for _ in range(args.count):
            seed = secrets.randbits(48)
            p = store.add_participant(participant_plan(study, seed), seed=seed, source="invite")
            print(f"{base}/p/{p.token}")
        return 0

    from physdiff.fileio import atomic_write_json
    from physdiff.listen.report import format_report, study_report

    if args.bootstrap < 100:
        raise PhysdiffError("--bootstrap must be >= 100 resamples")
    rep = study_report(study, store, n_boot=args.bootstrap, seed=args.seed, complete_only=args.complete_only)
    if args.json:
        atomic_write_json(args.json, rep)
    sys.stdout.write(format_report(rep))
    return 0
