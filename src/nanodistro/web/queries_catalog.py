"""What the catalog, package and freshness pages (and their JSON API) show, from the factory's
state and the repository's channels.

Each function answers one page with a fixed number of queries, whatever the catalog's size: one
per table it needs (packages, releases, the recipes' newest build/test events, the channel's
events) plus the two channels' ``version.json``. List pages never open an ``.apk``; the package
page reads the stable APKINDEX (cached: a repository version never changes) for dependents.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple, TypeVar

from pydantic import BaseModel, Field
from sqlalchemy import func, select

from nanodistro.errors import NanodistroError
from nanodistro.factory import events
from nanodistro.factory.freshness import PackageFreshness
from nanodistro.factory.state.models import (
    EventRow,
    PackageRow,
    UpstreamReleaseRow,
)
from nanodistro.formats.pkginfo import apk_filename
from nanodistro.formats.version import compare
from nanodistro.web.context import WebContext

__all__ = ["CatalogOut", "CatalogRow", "cached", "catalog", "json_ready"]

Status = Literal["building", "built", "failed", "passed", "test-failed", "gate-blocked", "none"]

# the newest of these events of a recipe is its status; gate-blocked comes from the channel
_STATUS_OF = {
    events.BUILD_STARTED: "building",
    events.BUILD_SUCCEEDED: "built",
    events.BUILD_FAILED: "failed",
    events.TEST_PASSED: "passed",
    events.TEST_FAILED: "test-failed",
}
_CHANNEL_MOVES = (events.PROMOTED, events.GATE_BLOCKED, events.ROLLED_BACK)
_LIST_LIMIT = 50


# ---------------------------------------------------------------------------------- models


class Freshness(BaseModel):
    released: datetime | None = Field(
        description="Upstream release of the stable version (provider time, else first seen)."
    )
    promoted: datetime | None = Field(description="When that version reached stable.")
    release_to_stable: float | None = Field(description="Lead time in seconds.")
    latest_upstream: str | None = Field(description="Newest upstream release the monitor saw.")
    stale: bool = Field(description="A newer upstream release is known but not in stable yet.")


class CatalogRow(BaseModel):
    package: str
    recipe: str
    arch: str | None
    stable: str | None = Field(description="Version in the stable channel.")
    staging: str | None = Field(description="Version in the staging channel.")
    last_update: datetime | None = Field(description="Newest publication of the package.")
    freshness: Freshness
    status: Status = Field(description="Newest build/test event of the recipe, or gate-blocked.")
    status_time: datetime | None
    url: str


class CatalogOut(BaseModel):
    workspace: str
    stable_version: int | None = Field(description="Repository version stable points at.")
    staging_version: int | None
    packages: list[CatalogRow]


# ---------------------------------------------------------------------------- channel reads


class _Package(NamedTuple):
    """A ``packages`` row as plain columns: loading thousands of ORM objects costs more than
    the rest of a page."""

    id: int
    name: str
    version: str
    arch: str
    sha256: str
    recipe: str
    repo_version: int | None
    published_at: datetime


class _Event(NamedTuple):
    type: str
    time: datetime
    payload: dict[str, Any]


@dataclass
class _Channels:
    numbers: dict[str, int | None]
    # channel -> {(arch, file name)}
    files: dict[str, set[tuple[str, str]]]

    def has(self, channel: str, row: _Package) -> bool:
        return (row.arch, apk_filename(row.name, row.version)) in self.files.get(channel, set())


def _channels(context: WebContext) -> _Channels:
    """Both channels' version numbers and files, from ``version.json`` (two small reads). A
    channel that cannot be read counts as unset: a page must not fail on a damaged link."""
    from nanodistro.repo.versions import CHANNELS, channel_version, read_version

    repo = context.workspace.packages_dir
    numbers: dict[str, int | None] = {}
    files: dict[str, set[tuple[str, str]]] = {}
    for channel in CHANNELS:
        try:
            number = channel_version(repo, channel)
            version = read_version(repo, number) if number is not None else None
        except NanodistroError:
            number, version = None, None
        numbers[channel] = number
        files[channel] = {
            (arch, name)
            for arch, listed in (version.packages.items() if version else ())
            for name in listed
        }
    return _Channels(numbers, files)


def _arch_order(context: WebContext, rows: list[_Package]) -> list[str]:
    """The workspace's arches first (its first is the one a catalog row shows), then others."""
    seen = sorted({r.arch for r in rows} - set(context.workspace.archs))
    return [*context.workspace.archs, *seen]


def _pick(rows: list[_Package], arches: list[str]) -> list[_Package]:
    """``rows`` of one package, the preferred arch's first, newest first within an arch."""
    rank = {arch: i for i, arch in enumerate(arches)}
    return sorted(rows, key=lambda r: (rank.get(r.arch, len(rank)), -r.id))


def _in_channel(rows: list[_Package], channels: _Channels, channel: str) -> _Package | None:
    return next((r for r in rows if channels.has(channel, r)), None)


# ------------------------------------------------------------------------------- state reads


def _packages(context: WebContext, name: str | None = None) -> list[_Package]:
    """Every package row (or those of ``name``), oldest first."""
    statement = select(
        PackageRow.id,
        PackageRow.name,
        PackageRow.version,
        PackageRow.arch,
        PackageRow.sha256,
        PackageRow.recipe,
        PackageRow.repo_version,
        PackageRow.published_at,
    ).order_by(PackageRow.id)
    if name is not None:
        statement = statement.where(PackageRow.name == name)
    with context.state.session() as session:
        return [_Package(*row) for row in session.execute(statement)]


def _releases(context: WebContext, recipe: str | None = None) -> dict[tuple[str, str], datetime]:
    """(recipe, upstream version) -> its release time: the provider's, else first seen."""
    statement = select(
        UpstreamReleaseRow.recipe,
        UpstreamReleaseRow.version,
        UpstreamReleaseRow.published_at,
        UpstreamReleaseRow.first_seen,
    )
    if recipe is not None:
        statement = statement.where(UpstreamReleaseRow.recipe == recipe)
    with context.state.session() as session:
        return {(r, v): published or seen for r, v, published, seen in session.execute(statement)}


def _recipe_status(context: WebContext, recipe: str | None = None) -> dict[str, _Event]:
    """recipe -> its newest build/test event (one query, all recipes or one)."""
    subject = (
        EventRow.subject == f"recipe:{recipe}" if recipe else EventRow.subject.startswith("recipe:")
    )
    newest = (
        select(func.max(EventRow.id))
        .where(subject, EventRow.type.in_(list(_STATUS_OF)))
        .group_by(EventRow.subject)
    )
    statement = select(EventRow.subject, EventRow.type, EventRow.time).where(
        EventRow.id.in_(newest)
    )
    with context.state.session() as session:
        return {
            subject.split(":", 1)[1]: _Event(type_, time, {})
            for subject, type_, time in session.execute(statement)
        }


def _channel_head(context: WebContext) -> _Event | None:
    """The newest promotion, gate block or rollback of stable."""
    statement = (
        select(EventRow.type, EventRow.time, EventRow.payload)
        .where(EventRow.subject == "channel:stable", EventRow.type.in_(_CHANNEL_MOVES))
        .order_by(EventRow.id.desc())
        .limit(1)
    )
    with context.state.session() as session:
        row = session.execute(statement).first()
    return _Event(*row) if row is not None else None


def _first_promoted(context: WebContext) -> dict[str, datetime]:
    """'<arch>/<file>' -> when a promotion of stable first brought it (freshness.py's rule)."""
    found: dict[str, datetime] = {}
    for event in events.query(context.state, subject="channel:stable", types=[events.PROMOTED]):
        for file in event.payload.get("packages") or []:
            found.setdefault(str(file), event.time)
    return found


def _newest_upstream(seen: dict[tuple[str, str], datetime]) -> dict[str, str]:
    newest: dict[str, str] = {}
    for recipe, version in seen:
        if recipe not in newest or compare(version, newest[recipe]) > 0:
            newest[recipe] = version
    return newest


def _upstream(full_version: str) -> str:
    return full_version.rsplit("-r", 1)[0]


def _status(
    recipe: str,
    statuses: dict[str, _Event],
    head: _Event | None,
    channels: _Channels,
    stable: _Package | None,
    staging: _Package | None,
) -> tuple[str, datetime | None]:
    # a package staged but kept out of stable by the newest gate decision on that staging
    if (
        head is not None
        and head.type == events.GATE_BLOCKED
        and head.payload.get("version") == channels.numbers.get("staging")
        and staging is not None
        and (stable is None or stable.version != staging.version)
    ):
        return "gate-blocked", head.time
    event = statuses.get(recipe)
    if event is None:
        return "none", None
    return _STATUS_OF[event.type], event.time


def _freshness_cell(
    row: _Package | None,
    recipe: str,
    seen: dict[tuple[str, str], datetime],
    newest: dict[str, str],
    promoted: dict[str, datetime],
) -> Freshness:
    latest = newest.get(recipe)
    if row is None:
        return Freshness(
            released=None,
            promoted=None,
            release_to_stable=None,
            latest_upstream=latest,
            stale=latest is not None,
        )
    item = PackageFreshness(row.name, row.version, row.arch, row.recipe)
    item.released = seen.get((recipe, _upstream(row.version)))
    item.promoted = promoted.get(f"{row.arch}/{apk_filename(row.name, row.version)}")
    return Freshness(
        released=item.released,
        promoted=item.promoted,
        release_to_stable=item.lead(item.promoted),
        latest_upstream=latest,
        stale=latest is not None and compare(latest, _upstream(row.version)) > 0,
    )


# ----------------------------------------------------------------------------------- catalog


def _recipe_names(context: WebContext) -> list[str]:
    """The workspace's recipe names (``recipes/*.yaml``, as ``Workspace.recipe_files``), without
    building a Path per file."""
    try:
        entries = os.scandir(context.workspace.recipes_dir)
    except OSError:
        return []
    with entries:
        return sorted(
            e.name[: -len(".yaml")]
            for e in entries
            if e.name.endswith(".yaml") and not e.name.startswith(".")
        )


def _fingerprint(context: WebContext) -> tuple[Any, ...]:
    """What the catalog and freshness answers depend on: the newest row of each append-only
    table they read (one query), the channel links and the recipes directory."""
    newest = select(
        select(func.max(EventRow.id)).scalar_subquery(),
        select(func.max(PackageRow.id)).scalar_subquery(),
        select(func.max(UpstreamReleaseRow.id)).scalar_subquery(),
    )
    with context.state.session() as session:
        rows = tuple(session.execute(newest).one())
    links: list[str | None] = []
    for channel in ("staging", "stable"):
        try:
            links.append(os.readlink(context.workspace.packages_dir / channel))
        except OSError:
            links.append(None)
    try:
        recipes = os.stat(context.workspace.recipes_dir).st_mtime_ns
    except OSError:
        recipes = None
    return (context.state.url, context.workspace.root, rows, tuple(links), recipes)


T = TypeVar("T")
_CACHE: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 8


def cached(kind: str, context: WebContext, compute: Callable[[WebContext], T]) -> T:
    """``compute(context)``, reused while the state's fingerprint is unchanged: a page read
    again between two factory steps costs one small query, not a pass over every row."""
    key = (kind, *_fingerprint(context))
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            found: T = _CACHE[key]
            return found
    value = compute(context)
    with _CACHE_LOCK:
        _CACHE[key] = value
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return value


def catalog(context: WebContext) -> CatalogOut:
    """One row per binary package (and per recipe that has none yet), sorted by name."""
    return cached("catalog", context, _catalog)


def _catalog(context: WebContext) -> CatalogOut:
    channels = _channels(context)
    rows = _packages(context)
    seen = _releases(context)
    newest = _newest_upstream(seen)
    statuses = _recipe_status(context)
    head = _channel_head(context)
    promoted = _first_promoted(context)
    arches = _arch_order(context, rows)
    by_name: dict[str, list[_Package]] = defaultdict(list)
    for row in rows:
        by_name[row.name].append(row)
    out = []
    for name, mine in by_name.items():
        ordered = _pick(mine, arches)
        stable = _in_channel(ordered, channels, "stable")
        staging = _in_channel(ordered, channels, "staging")
        recipe = ordered[0].recipe
        status, when = _status(recipe, statuses, head, channels, stable, staging)
        out.append(
            CatalogRow(
                package=name,
                recipe=recipe,
                arch=(stable or staging or ordered[0]).arch,
                stable=stable.version if stable else None,
                staging=staging.version if staging else None,
                last_update=max(r.published_at for r in mine),
                freshness=_freshness_cell(stable, recipe, seen, newest, promoted),
                status=status,  # type: ignore[arg-type]
                status_time=when,
                url=f"/packages/{name}",
            )
        )
    # recipes that never published anything (a first build failing) still get a row
    recipes_with_rows = {r.recipe for r in rows}
    for recipe in _recipe_names(context):
        if recipe in recipes_with_rows or recipe in by_name:
            continue
        status, when = _status(recipe, statuses, head, channels, None, None)
        out.append(
            CatalogRow(
                package=recipe,
                recipe=recipe,
                arch=None,
                stable=None,
                staging=None,
                last_update=None,
                freshness=_freshness_cell(None, recipe, seen, newest, promoted),
                status=status,  # type: ignore[arg-type]
                status_time=when,
                url=f"/packages/{recipe}",
            )
        )
    out.sort(key=lambda r: r.package)
    return CatalogOut(
        workspace=context.workspace.name,
        stable_version=channels.numbers.get("stable"),
        staging_version=channels.numbers.get("staging"),
        packages=out,
    )


def json_ready(model: BaseModel) -> Any:
    """A model as JSON-compatible data (for a page's inline chart data)."""
    return model.model_dump(mode="json")
