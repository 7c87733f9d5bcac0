"""``physdiff sheets``: contact and spectrogram sheets of a small world (:mod:`physdiff.world.sheets`)."""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    from physdiff.world.sheets import main as sheets_main

    return sheets_main(argv)
