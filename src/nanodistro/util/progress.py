"""The progress callback engines accept: one human-readable line per call (DESIGN: engines do
not print; the CLI or the factory decides where the lines go)."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Progress", "prefixed"]

Progress = Callable[[str], None]


def prefixed(say: Progress, name: str) -> Progress:
    """``say`` with every line starting ``[name]``: for work running at the same time, whose
    lines interleave and so must each name what they are about."""
    return lambda message: say(f"[{name}] {message}")
