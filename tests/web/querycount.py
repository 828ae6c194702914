"""How many SQL statements a request costs: pages must stay O(1) in queries whatever the size
of the catalog (the timing itself is measured by bench/bench_console.py, never asserted)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine


@contextlib.contextmanager
def count_statements(*engines: Engine) -> Iterator[list[str]]:
    """The statements run on ``engines`` while inside (BEGIN/COMMIT not counted)."""
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    for engine in engines:
        event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", before)
