"""Checking recipes against their upstreams, concurrently.

``check_paths`` / ``check_targets`` run every recipe's provider under one bounded pool; a failing
upstream becomes an ``error`` result for that recipe and never stops the others. Each recipe has
one deadline (``recipe_timeout``, default :data:`RECIPE_TIMEOUT`, ``--deadline`` and
``[monitor] deadline``) over all its requests, and each request one of its own
(``request_timeout``), so an upstream that accepts connections and never answers costs at most
that much; a host that stayed silent is not asked again in the same run (``http.py``). Results
come back in the order of the targets, whatever order the checks finish in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from nanodistro.errors import NanodistroError
from nanodistro.monitor import models as m
from nanodistro.monitor.defaults import RECIPE_TIMEOUT
from nanodistro.monitor.http import REQUEST_TIMEOUT, HttpClient, track_requests
from nanodistro.monitor.models import Candidate, CheckResult, RecipeTarget, UpstreamRelease
from nanodistro.monitor.providers import PROVIDERS
from nanodistro.monitor.providers.base import Endpoints, ProviderConfig
from nanodistro.monitor.recipes import find_recipes, load_target
from nanodistro.monitor.shards import check_sharded, shard_count
from nanodistro.monitor.state import MonitorState
from nanodistro.monitor.versions import choose, is_newer, prepare_releases

Progress = Callable[[CheckResult], None]

# Schemes tried first per provider: the ordering its ecosystem defines.
_PREFERRED_SCHEME = {"pypi": ("pep440",), "npm": ("semver",)}

# RECIPE_TIMEOUT (seconds one recipe's check may take in all) lives in monitor/defaults.py.


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "nanodistro" / "monitor"


def _pinned_checkout(target: RecipeTarget) -> m.GitCheckout | None:
    """The git-checkout whose ``expected-commit`` follows the version (melange renovator rule)."""
    pinned = [c for c in target.git_checkouts if c.expected_commit]
    if len(pinned) == 1:
        return pinned[0]
    versioned = [c for c in pinned if c.tag and "${{" in c.tag]
    return versioned[0] if versioned else None


def _retag_message(target: RecipeTarget, same: Candidate, state: MonitorState) -> str | None:
    release = same.release
    checkout = _pinned_checkout(target)
    if checkout and release.commit and checkout.expected_commit != release.commit:
        return (
            f"upstream {release.version} now points at {release.commit[:12]}, the recipe pins "
            f"{(checkout.expected_commit or '')[:12]} (re-tagged; review before rebuilding)"
        )
    recorded = state.recorded(target.name, same.version)
    for key, new in (("commit", release.commit), ("checksum", release.checksum)):
        old = recorded.get(key)
        if old and new and old != new:
            return (
                f"upstream {release.version} {key} changed from {old[:19]} to {new[:19]} "
                "(re-tagged; review before rebuilding)"
            )
    return None


async def _enrich(
    module: Any, config: ProviderConfig, client: HttpClient, release: UpstreamRelease
) -> UpstreamRelease:
    enrich = getattr(module, "enrich", None)
    if enrich is None:
        return release
    try:
        result: UpstreamRelease = await enrich(config, client, release)
    except NanodistroError:
        return release  # a missing date is not worth failing the check
    return result


async def check_target(
    target: RecipeTarget,
    client: HttpClient,
    *,
    state: MonitorState,
    endpoints: Endpoints,
    now: datetime,
    force: bool = False,
    recipe_timeout: float = RECIPE_TIMEOUT,
) -> CheckResult:
    """Check one recipe; never raises for upstream or recipe problems (they become results)."""
    asked: list[str] = []
    try:
        async with asyncio.timeout(recipe_timeout) as deadline:
            asked = track_requests(deadline)
            return await _check_target(
                target, client, state=state, endpoints=endpoints, now=now, force=force
            )
    except TimeoutError:
        return CheckResult(
            name=target.name,
            current=target.version,
            status=m.ERROR,
            path=target.path,
            kind=target.update.monitor_kind() if target.update else None,
            message=_deadline_message(asked[-1] if asked else None, recipe_timeout),
        )


def _deadline_message(waiting_on: str | None, deadline: float) -> str:
    """``URL: no answer from HOST within the recipe deadline of N s (--deadline)``."""
    if waiting_on is None:
        return f"no answer within the recipe deadline of {deadline:g} s (--deadline)"
    host = urlsplit(waiting_on).hostname if "://" in waiting_on else None
    return (
        f"{waiting_on}: no answer from {host or waiting_on} within the recipe deadline of "
        f"{deadline:g} s (--deadline)"
    )


def _sourceless_note(sourceless: Sequence[Candidate], latest: str) -> str | None:
    """Name the newest release newer than ``latest`` that has no source archive."""
    newer = [c.version for c in sourceless if is_newer(c.version, latest)]
    if not newer:
        return None
    newest = max(newer, key=lambda v: sum(is_newer(v, other) for other in newer))
    return f"{newest}: no source release (only built files upstream), not offered"


async def _check_target(
    target: RecipeTarget,
    client: HttpClient,
    *,
    state: MonitorState,
    endpoints: Endpoints,
    now: datetime,
    force: bool,
) -> CheckResult:
    result = CheckResult(name=target.name, current=target.version, status=m.ERROR, path=target.path)
    update = target.update
    if update is None:
        result.status, result.message = m.NO_MONITOR, "recipe has no update: block"
        return result
    result.manual = update.manual
    if not update.enabled:
        result.status = m.DISABLED
        result.message = update.exclude_reason or "update.enabled is not true"
        return result
    kind = update.monitor_kind()
    result.kind = kind
    if kind is None:
        result.status, result.message = m.NO_MONITOR, "update: names no upstream to monitor"
        return result
    if not force and update.schedule and not state.due(target.name, update.schedule.period, now):
        result.status = m.SCHEDULED
        result.message = f"checked within its {update.schedule.period} schedule"
        return result
    module = PROVIDERS.get(kind)
    if module is None:
        result.message = f"the {kind} monitor is not supported by nanodistro yet"
        return result
    config = ProviderConfig(
        target=target,
        update=update,
        endpoints=endpoints,
        want_commits=_pinned_checkout(target) is not None,
    )
    try:
        releases = await module.versions(config, client)
        candidates = prepare_releases(releases, update, module.block(update))
        # releases with nothing to build from (wheel-only on PyPI) are reported, not offered
        sourceless = [c for c in candidates if not c.release.has_source]
        candidates = [c for c in candidates if c.release.has_source]
        result.candidates = len(candidates)
        latest, upgrade, same = choose(
            candidates,
            target.version,
            sequential=update.require_sequential,
            prefer=_PREFERRED_SCHEME.get(kind, ()),
        )
        if latest is None:
            result.message = _sourceless_note(sourceless, target.version) or (
                f"no version left after the recipe's filters ({len(releases)} upstream releases)"
            )
            return result
        latest = Candidate(latest.version, await _enrich(module, config, client, latest.release))
        result.latest = latest.version
        result.latest_published_at = latest.release.published_at
        result.latest_commit = latest.release.commit
        result.latest_url = latest.release.url
        retag = _retag_message(target, same, state) if same is not None else None
        if upgrade is not None:
            result.status, result.next_version = m.UPDATE, upgrade.version
        elif retag:
            result.status, result.message = m.RETAGGED, retag
        else:
            result.status = m.UP_TO_DATE
        note = _sourceless_note(sourceless, latest.version)
        if note:
            result.message = f"{result.message}; {note}" if result.message else note
        for seen in (latest, same):
            if seen is not None:
                state.record(target.name, seen.version, seen.release.commit, seen.release.checksum)
        state.mark_checked(target.name, now)
    except NanodistroError as error:
        result.status, result.message = m.ERROR, str(error)
    except Exception as error:  # one broken upstream must not stop the others
        result.status, result.message = (
            m.ERROR,
            f"unexpected failure (a bug; please report it): {error}",
        )
    return result


async def check_targets_async(
    targets: Sequence[RecipeTarget | CheckResult],
    *,
    concurrency: int = 16,
    per_host: int = 4,
    cache_dir: Path | None = None,
    endpoints: Endpoints | None = None,
    progress: Progress | None = None,
    now: datetime | None = None,
    backoff: float = 1.0,
    force: bool = False,
    request_timeout: float = REQUEST_TIMEOUT,
    recipe_timeout: float = RECIPE_TIMEOUT,
    insecure: bool = False,
    state: MonitorState | None = None,
    indexed_progress: Callable[[int, CheckResult], None] | None = None,
) -> list[CheckResult]:
    """Check all targets (pre-made ``CheckResult`` entries, e.g. load errors, pass through).

    ``force`` checks recipes even when their ``update.schedule`` says they are not due.
    ``request_timeout`` bounds one GET (all attempts and reads), ``recipe_timeout`` one
    recipe's whole check (its waits for a slot in the pool or a host's free slot not
    included); ``insecure`` allows plain http to hosts other than loopback. The results are in
    the order of ``targets``. A ``state`` given is updated but not saved (``shards.py``);
    ``indexed_progress`` is told each result with its index in ``targets``.
    """
    endpoints = endpoints or Endpoints.from_env()
    now = now or datetime.now(UTC)
    own_state = state is None
    if state is None:
        state = MonitorState.load(cache_dir / "state.json" if cache_dir else None)
    pool = asyncio.Semaphore(max(1, concurrency))

    async def one(
        client: HttpClient, index: int, target: RecipeTarget | CheckResult
    ) -> CheckResult:
        if isinstance(target, CheckResult):
            result = target
        else:
            async with pool:
                result = await check_target(
                    target,
                    client,
                    state=state,
                    endpoints=endpoints,
                    now=now,
                    force=force,
                    recipe_timeout=recipe_timeout,
                )
        if progress:
            progress(result)
        if indexed_progress:
            indexed_progress(index, result)
        return result

    async with HttpClient(
        cache_dir=cache_dir,
        per_host=per_host,
        backoff=backoff,
        request_timeout=request_timeout,
        silent_after=recipe_timeout,
        insecure=insecure,
    ) as client:
        results = await asyncio.gather(*(one(client, i, t) for i, t in enumerate(targets)))
    if own_state:
        state.save()
    return list(results)


def load_targets(paths: Sequence[Path]) -> list[RecipeTarget | CheckResult]:
    """Recipe targets for files/directories; unreadable recipes become error results."""
    targets: list[RecipeTarget | CheckResult] = []
    for path in find_recipes(paths):
        try:
            targets.append(load_target(path))
        except NanodistroError as error:
            targets.append(
                CheckResult(
                    name=path.stem, current="?", status=m.ERROR, message=str(error), path=path
                )
            )
    return targets


def check_paths(paths: Sequence[Path], *, workers: int = 1, **options: Any) -> list[CheckResult]:
    """Synchronous entry point: load recipes under ``paths`` and check them all, in up to
    ``workers`` processes for a large catalog (``shards.py``); results in recipe order."""
    files = find_recipes(paths)
    shards = shard_count(workers, len(files))
    if shards > 1:
        return check_sharded(files, shards, **options)
    return asyncio.run(check_targets_async(load_targets(files), **options))


def exit_status(results: Sequence[CheckResult]) -> int:
    """0 all up to date, 10 updates (or re-tags) exist, 1 errors and nothing to update."""
    if any(r.status in (m.UPDATE, m.RETAGGED) for r in results):
        return 10
    if any(r.status == m.ERROR for r in results):
        return 1
    return 0
