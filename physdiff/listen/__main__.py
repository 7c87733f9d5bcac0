"""``python -m physdiff.listen ...``: the listening-study command until it is wired as ``physdiff listen``."""

import sys

from physdiff.errors import run_cli
from physdiff.listen.cli import main

run_cli(lambda: main(sys.argv[1:]))
