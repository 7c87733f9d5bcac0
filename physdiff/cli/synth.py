"""``physdiff synth``: generate the synthetic physics world, impact videos + sounds in the Greatest Hits layout.

    physdiff synth --out data/world/tiny --preset tiny --seed 0          # 40 videos x 12 hits, 64 px
    physdiff synth --out DIR --videos 20 --hits-per-video 16 --seed 0 --size 224 --workers 2
    physdiff synth --preset debug world.clean=true                       # no room, no noise

(``python shards/synth.py ...`` is the same command.) Without ``--out`` the world goes to its place in the
data folder, ``<data>/world/<hash of the world section>``, where the pipeline looks for it. A folder that
already holds this exact world (same world identity in its config.json) is reused ("cached"); any other
non-empty folder is refused unless ``--overwrite``. Writes DIR/config.json (the resolved config).
Python: ``physdiff.world.generate_world(out_dir, world_config)``.
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    from physdiff.cli.common import add_config_args, add_data_args, config_from_args, data_overrides, parser
    from physdiff.world.generate import ensure_world, world_hash

    ap = parser("physdiff synth", __doc__)
    ap.add_argument("--out", default=None, help="output folder (default: the world's folder under the data root)")
    ap.add_argument("--videos", type=int, default=None, help="number of videos (world.videos)")
    ap.add_argument("--hits-per-video", type=int, default=None, help="events per video (world.hits_per_video)")
    ap.add_argument("--seed", type=int, default=None, help="the world's seed (world.seed): same seed, same bytes")
    ap.add_argument("--size", type=int, default=None, help="square frame size in px (world.size)")
    ap.add_argument("--workers", type=int, default=None, help="processes (world.workers; the bytes do not depend on it)")
    ap.add_argument("--overwrite", action="store_true", help="replace a world already in --out")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_data_args(ap, tracking=False)
    add_config_args(ap)
    args = ap.parse_args(argv)
    cfg = config_from_args(args, {**data_overrides(args), "world.videos": args.videos,
                                  "world.hits_per_video": args.hits_per_video, "world.seed": args.seed,
                                  "world.size": args.size, "world.workers": args.workers})
    out, summary = ensure_world(cfg, args.out, overwrite=args.overwrite, progress=not args.no_progress)
    if summary is None:
        print(f"cached: {out} already holds this world (world hash {world_hash(cfg)})")
        return 0
    mb = summary["bytes"] / 1e6
    print(f"wrote {summary['videos']} videos, {summary['events']} events, {summary['seconds']:.1f} s of content, "
          f"{mb:.1f} MB in {summary['wall_seconds']:.1f} s -> {out}")
    print("materials: " + ", ".join(f"{k} {v}" for k, v in summary["materials"].items()))
    return 0
