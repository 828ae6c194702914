"""Checking a catalog on every core: contiguous shards of the recipe list, one process each.

One process spends most of its time in the HTTP client and JSON parsing, both CPU-bound under
the GIL, so a catalog of thousands of recipes is split into ``workers`` contiguous shards, each
loaded and checked by its own process with its own event loop and HTTP client. The limits stay
those of one run: each worker gets its share of ``concurrency`` and ``per_host``. Workers never
write the schedule state: they send their recipes' entries and the parent merges them into the
one ``state.json`` (two writers would lose each other's updates). Each result is sent as soon
as it is known, so progress stays live; the results come back in recipe order.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue as queue_module
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nanodistro.errors import MonitorError
from nanodistro.monitor.models import CheckResult
from nanodistro.monitor.state import MonitorState

#: Fewer recipes per worker than this are not worth a process of their own.
MIN_SHARD = 250


def shard_count(workers: int, recipes: int) -> int:
    """How many processes to use for ``recipes`` recipes with at most ``workers``."""
    return max(1, min(workers, recipes // MIN_SHARD))


def _worker(shard: int, paths: list[Path], options: dict[str, Any], queue: Any) -> None:
    """One shard: load and check ``paths``, sending ``(shard, index, result)`` per recipe,
    then ``(shard, "state", entries)``; ``(shard, "error", message)`` when it failed."""
    from nanodistro.monitor.check import check_targets_async, load_targets

    try:
        targets = load_targets(paths)
        cache_dir = options.get("cache_dir")
        state = MonitorState.load(cache_dir / "state.json" if cache_dir else None)
        results = asyncio.run(
            check_targets_async(
                targets,
                state=state,
                indexed_progress=lambda index, result: queue.put((shard, index, result)),
                **options,
            )
        )
        names = {result.name for result in results}
        queue.put((shard, "state", {k: v for k, v in state.recipes.items() if k in names}))
    except BaseException as error:  # the parent must hear of it, whatever it was
        queue.put((shard, "error", f"unexpected failure (a bug; please report it): {error}"))
        raise


def check_sharded(
    paths: Sequence[Path],
    workers: int,
    *,
    progress: Callable[[CheckResult], None] | None = None,
    concurrency: int = 16,
    per_host: int = 4,
    **options: Any,
) -> list[CheckResult]:
    """Check the recipe files ``paths`` in ``workers`` processes; results in ``paths`` order."""
    paths = list(paths)
    size = -(-len(paths) // workers)
    shards = [paths[i : i + size] for i in range(0, len(paths), size)]
    # fork is nearly free and shares the imports; a process with other threads (a server
    # calling this) must not fork, so it pays for fresh interpreters instead
    context = (
        multiprocessing.get_context("fork")
        if threading.active_count() == 1
        else multiprocessing.get_context("spawn")
    )
    queue = context.Queue()
    share = {
        "concurrency": max(1, concurrency // len(shards)),
        "per_host": max(1, per_host // len(shards)),
        **options,
    }
    processes = [
        context.Process(target=_worker, args=(i, shard, share, queue), daemon=True)
        for i, shard in enumerate(shards)
    ]
    for process in processes:
        process.start()
    offsets = [sum(len(s) for s in shards[:i]) for i in range(len(shards))]
    results: dict[int, CheckResult] = {}
    entries: dict[str, Any] = {}
    finished: set[int] = set()
    try:
        while len(finished) < len(shards):
            try:
                sender, key, value = queue.get(timeout=1.0)
            except queue_module.Empty:
                _check_alive(processes, finished, shards)
                continue
            if key == "error":
                raise MonitorError(str(value), where=str(shards[sender][0]))
            if key == "state":
                entries.update(value)
                finished.add(sender)
                continue
            results[offsets[sender] + key] = value
            if progress:
                progress(value)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join()
    cache_dir = options.get("cache_dir")
    if cache_dir is not None:
        state = MonitorState.load(cache_dir / "state.json")
        state.recipes.update(entries)
        state.save()
    return [results[i] for i in range(len(paths))]


def _check_alive(processes: list[Any], finished: set[int], shards: list[list[Path]]) -> None:
    """Fail when a worker ended without finishing its shard (killed, out of memory)."""
    for shard, process in enumerate(processes):
        # a clean exit has sent its state (or its error) before ending
        if shard not in finished and process.exitcode not in (None, 0):
            raise MonitorError(
                f"the monitor process checking {len(shards[shard])} recipes from here on "
                f"ended early (exit status {process.exitcode})",
                where=str(shards[shard][0]),
            )
