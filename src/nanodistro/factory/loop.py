"""The unattended factory: cycles (factory/cycle.py) one after another.

``run_loop`` runs a cycle, then waits ``interval`` and runs the next, until stopped (or after
one with ``once``). Each cycle stands alone: what a killed one left unfinished, the next one
finishes (see factory/cycle.py). The pieces: building.py (monitor, bump, builds, dependents),
imagebuild.py (images, smoke tests), gates.py, promote.py, freshness.py, rollback.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from nanodistro.factory.cycle import CycleReport, run_cycle
from nanodistro.factory.workspace import Workspace
from nanodistro.util.progress import Progress

__all__ = ["CycleReport", "run_cycle", "run_loop"]


def run_loop(
    workspace: Workspace,
    state: Any,
    *,
    once: bool = False,
    interval: timedelta = timedelta(minutes=10),
    progress: Progress | None = None,
    monitor_upstreams: bool = True,
    on_cycle: Callable[[CycleReport], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    concurrency: int | None = None,
) -> CycleReport:
    """Run cycles until interrupted (``once``: a single one); the last cycle's report.
    ``concurrency``: jobs at once (default: the workspace's, else the CPU count)."""
    while True:
        started = time.monotonic()
        report = run_cycle(
            workspace,
            state,
            progress=progress,
            monitor_upstreams=monitor_upstreams,
            concurrency=concurrency,
        )
        if on_cycle is not None:
            on_cycle(report)
        if once:
            return report
        sleep(max(0.0, interval.total_seconds() - (time.monotonic() - started)))
