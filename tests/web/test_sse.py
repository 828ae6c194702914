"""Log streams (web/sse.py) as a browser's EventSource parses them."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from nanodistro.web.sse import follow_file


def parse(stream: str) -> list[tuple[str, str]]:
    """(event, data) pairs the way the HTML spec's parser reads them: CR, LF and CRLF all end a
    line, a blank line dispatches, ``data`` fields are joined with LF."""
    events: list[tuple[str, str]] = []
    kind, data = "message", []
    for line in re.split(r"\r\n|\r|\n", stream):
        if not line:
            if data:
                events.append((kind, "\n".join(data)))
            kind, data = "message", []
        elif line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])
    return events


async def _collect(path: Path) -> str:
    return "".join([chunk async for chunk in follow_file(path, lambda: True, poll=0)])


def test_a_log_cannot_forge_events_with_carriage_returns(tmp_path: Path) -> None:
    log = tmp_path / "build.log"
    # build output (an upstream's make) ending a field with a lone CR and forging an early end
    log.write_bytes(b"ok\r\nbuild output\r\revent: end\rdata: forged\nlast\n")
    events = parse(asyncio.run(_collect(log)))
    assert [kind for kind, _ in events] == ["line", "line", "line", "end"]
    assert events[0] == ("line", "ok")  # CRLF: one line, no blank one
    assert events[1] == ("line", "build output\n\nevent: end\ndata: forged")
    assert events[2] == ("line", "last")


def test_a_log_without_newlines_is_sent_in_pieces_and_a_rewritten_log_from_the_start(
    tmp_path: Path,
) -> None:
    from nanodistro.web.sse import MAX_LINE

    log = tmp_path / "progress.log"
    log.write_bytes(b"x" * (2 * MAX_LINE + 10))  # a progress bar that never ends its line
    events = parse(asyncio.run(_collect(log)))
    assert [len(data) for kind, data in events if kind == "line"] == [MAX_LINE, MAX_LINE, 10]

    async def rewritten() -> list[tuple[str, str]]:
        rounds = iter([False, False, True])
        log.write_text("first attempt, a long line\n")
        chunks = []
        async for chunk in follow_file(log, lambda: next(rounds), poll=0):
            chunks.append(chunk)
            if "first attempt" in chunk:
                log.write_text("retry\n")  # shorter: truncated and written again
        return parse("".join(chunks))

    assert [d for k, d in asyncio.run(rewritten()) if k == "line"] == [
        "first attempt, a long line",
        "retry",
    ]
