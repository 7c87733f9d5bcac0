"""``python -m physdiff <command> ...``: the same as the ``physdiff`` console command."""

from physdiff.cli import main

main()
