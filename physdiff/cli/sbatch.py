"""``physdiff sbatch NAME``: print one of the sbatch templates shipped with the package (``slurm/`` in a checkout).

    physdiff sbatch train > train.sbatch && sbatch --nodes=2 --gpus-per-node=8 train.sbatch --stage prior
    physdiff sbatch train_cpu
    physdiff sbatch ray_sweep
"""

from __future__ import annotations

from importlib import resources


def templates() -> list[str]:
    return sorted(p.name[: -len(".sbatch")] for p in resources.files("physdiff.launch").joinpath("sbatch").iterdir()
                  if p.name.endswith(".sbatch"))


def main(argv: list[str] | None = None) -> int:
    from physdiff.cli.common import parser
    from physdiff.errors import PhysdiffError

    ap = parser("physdiff sbatch", __doc__)
    ap.add_argument("name", help="the template: " + ", ".join(templates()))
    args = ap.parse_args(argv)
    if args.name not in templates():
        raise PhysdiffError(f"no sbatch template {args.name!r}; templates: {', '.join(templates())}")
    print(resources.files("physdiff.launch").joinpath("sbatch", f"{args.name}.sbatch").read_text(), end="")
    return 0
