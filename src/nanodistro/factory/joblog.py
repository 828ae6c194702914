"""Each job's own log, written while it runs: what the job says (progress) and its build
output go to ``<workspace>/.nanodistro/jobs/<job id>.log``, which ``JobStore.claim`` records
as the job's ``log_path`` before it starts, so the console can follow it live.

The log belongs to the thread running the job (a context variable the executor sets), so the
cycle's ``say`` can stay one function: called from a job's thread, it also lands in that job's
log; called from the cycle itself, only in the cycle's output.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from nanodistro.util.progress import Progress

__all__ = ["job_log", "stamped", "teeing", "write"]

_current: ContextVar[TextIO | None] = ContextVar("nanodistro_job_log", default=None)


@contextlib.contextmanager
def job_log(path: Path | None) -> Iterator[None]:
    """While inside, ``write`` on this thread appends to ``path`` (None: nowhere)."""
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8", errors="replace", buffering=1) as out:
        token = _current.set(out)
        try:
            yield
        finally:
            _current.reset(token)


def stamped(message: str) -> str:
    """``message`` as log lines: each of its lines after the time (UTC, HH:MM:SS)."""
    stamp = datetime.now(UTC).strftime("%H:%M:%S")
    return "".join(f"{stamp} {line}\n" for line in message.splitlines() or [""])


def write(message: str) -> None:
    """Append ``message`` (each of its lines, timestamped) to the current job's log, if any."""
    out = _current.get()
    if out is not None:
        out.write(stamped(message))


def teeing(say: Progress) -> Progress:
    """``say``, also written to the log of the job running on the calling thread."""

    def both(message: str) -> None:
        write(message)
        say(message)

    return both
