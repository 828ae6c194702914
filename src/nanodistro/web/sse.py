"""Server-sent events that follow a growing log file until its producer is done.

Following the file (rather than an in-process queue) lets a page opened mid-run see the whole
log from the start, and works whoever writes the file: the runner thread, a build job.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from fastapi.responses import StreamingResponse

__all__ = ["EVENT_STREAM", "event", "follow_file", "stream_response"]

POLL_SECONDS = 0.25
# a comment line now and then keeps proxies from closing a quiet stream
KEEPALIVE_SECONDS = 15.0


# The OpenAPI description of a log stream: each server-sent event is a ``line`` (one line of
# the log) or the final ``end`` (schemathesis checks every event against it).
EVENT_STREAM: dict[str, Any] = {
    "description": "Server-sent events: `line` for each line of the log, then one `end`.",
    "content": {
        "text/event-stream": {
            "schema": {
                "type": "object",
                "properties": {
                    "event": {"type": "string", "enum": ["line", "end"]},
                    "data": {"type": "string"},
                },
                "required": ["event", "data"],
            }
        }
    },
}


def stream_response(events: AsyncIterator[str]) -> StreamingResponse:
    """A streamed log as the browser's EventSource wants it (and no proxy buffers)."""
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# SSE ends a line at CR, LF or CRLF: a lone CR left in a data line would let a log (build
# output) end the field early and inject its own fields and events (a fake ``end``).
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def event(kind: str, data: str) -> str:
    """One server-sent event; each line of ``data`` is its own ``data:`` field."""
    lines = _LINE_BREAK.split(data)
    return f"event: {kind}\n" + "".join(f"data: {line}\n" for line in lines) + "\n"


# A "line" longer than this (a log without newlines) is sent in pieces rather than held.
MAX_LINE = 64 * 1024


def _read_new(path: Path, offset: int) -> tuple[bytes, int]:
    """What ``path`` holds past ``offset`` (from the start again when it shrank: rewritten)."""
    if not path.is_file():
        return b"", offset
    with path.open("rb") as handle:
        handle.seek(0, 2)
        if handle.tell() < offset:
            offset = 0
        handle.seek(offset)
        data = handle.read()
    return data, offset + len(data)


async def follow_file(
    path: Path | None, done: Callable[[], bool], *, poll: float = POLL_SECONDS
) -> AsyncIterator[str]:
    """``line`` events for each line of ``path`` (present or to come), then one ``end`` event
    once ``done()`` is true and everything written was sent. ``done`` and the reads run on a
    worker thread: a database query or a slow disk never stalls the event loop (and with it
    every other request)."""
    offset = 0
    pending = b""
    quiet_since = time.monotonic()
    while True:
        # read before the file: whatever was written before "done" is sent
        finished = await asyncio.to_thread(done)
        if path is not None:
            data, offset = await asyncio.to_thread(_read_new, path, offset)
            pending += data
            *lines, pending = pending.split(b"\n")
            while len(pending) > MAX_LINE:
                lines.append(pending[:MAX_LINE])
                pending = pending[MAX_LINE:]
            for line in lines:  # a CRLF log's lines are lines, not a line and a blank one
                yield event("line", line.removesuffix(b"\r").decode("utf-8", "replace"))
                quiet_since = time.monotonic()
        if finished:
            if pending:
                yield event("line", pending.decode("utf-8", "replace"))
            yield event("end", "")
            return
        if time.monotonic() - quiet_since > KEEPALIVE_SECONDS:
            yield ": keep-alive\n\n"
            quiet_since = time.monotonic()
        await asyncio.sleep(poll)
