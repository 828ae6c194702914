"""The progress callback engines accept: one human-readable line per call (DESIGN: engines do
not print; the CLI or the factory decides where the lines go)."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Progress"]

Progress = Callable[[str], None]
