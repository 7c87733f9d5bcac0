"""One screen of a listening study: an item in a block, with the methods in the order a participant sees them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Screen:
    """One page a participant answers: an item in a block, the methods in shown order (letter A first)."""

    position: int
    block: str
    item: str
    order: tuple[str, ...]

    @property
    def letters(self) -> tuple[str, ...]:
        return tuple(chr(ord("A") + i) for i in range(len(self.order)))

    def method_of(self, letter: str) -> str | None:
        i = ord(letter) - ord("A") if len(letter) == 1 else -1
        return self.order[i] if 0 <= i < len(self.order) else None
