"""The progress callback engines accept: one human-readable line per call (DESIGN: engines do
not print; the CLI or the factory decides where the lines go).

A line may be a ``StageStarted`` or ``StageFinished``: still a plain ``str`` to every consumer
that only logs lines (the factory's job logs), but one that shows timing (the CLI's live status
line and per-step elapsed times) can tell a timed stage's start and end from the other lines."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Progress", "StageFinished", "StageStarted", "prefixed"]

Progress = Callable[[str], None]


class StageStarted(str):
    """``message``: a timed stage (a step, a package, a recipe) began. ``kind`` says which:
    ``recipe`` for a whole recipe, else what the stage does (``source``, ``build``, ...)."""

    kind: str

    def __new__(cls, message: str, kind: str = "step") -> StageStarted:
        line = super().__new__(cls, message)
        line.kind = kind
        return line


class StageFinished(str):
    """The end of the stage ``message`` after ``seconds``; ``status`` is ``ok``, ``failed`` or
    ``interrupted``. Its text reads ``<message>: <status> in 1.2s`` for plain-line consumers."""

    message: str
    kind: str
    seconds: float
    status: str

    def __new__(
        cls, message: str, seconds: float, status: str = "ok", kind: str = "step"
    ) -> StageFinished:
        word = "done" if status == "ok" else status
        line = super().__new__(cls, f"{message}: {word} in {format_seconds(seconds)}")
        line.message, line.kind, line.seconds, line.status = message, kind, seconds, status
        return line


def format_seconds(seconds: float) -> str:
    """``0.4s``, ``12.3s``, ``2m05s``, ``1h02m``: short, for progress lines."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def prefixed(say: Progress, name: str) -> Progress:
    """``say`` with every line starting ``[name]``: for work running at the same time, whose
    lines interleave and so must each name what they are about."""
    return lambda message: say(f"[{name}] {message}")
