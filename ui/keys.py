"""Which emotion each number key chooses: the same order in the panel and the live window."""

from __future__ import annotations

from collections.abc import Iterable

FIRST = ("happy", "surprised", "angry", "sleepy")  # the built-ins, in the order keys 1-4 always had


def emotion_order(emotion_ids: Iterable[str]) -> list[str]:
    """The built-ins first (as above), then every other emotion by name; keys 1-9 take the first nine."""
    ids = set(emotion_ids)
    return [name for name in FIRST if name in ids] + sorted(ids - set(FIRST))


def key_help(order: list[str]) -> str:
    """One line naming what keys 1-9 choose."""
    return "  ".join(f"{number} {name}" for number, name in enumerate(order[:9], start=1))
