"""What the catalog, package and freshness pages (and their JSON API) show, from the factory's
state and the repository's channels.

Each function answers one page with a fixed number of queries, whatever the catalog's size: one
per table it needs (packages, releases, the recipes' newest build/test events, the channel's
events) plus the two channels' ``version.json``. List pages never open an ``.apk``; the package
page reads the stable APKINDEX (cached: a repository version never changes) for dependents.
"""

from __future__ import annotations

import functools
import os
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeVar

from pydantic import BaseModel, Field
from sqlalchemy import func, select

from nanodistro.errors import NanodistroError
from nanodistro.factory import events
from nanodistro.factory.freshness import PackageFreshness
from nanodistro.factory.state.models import (
    EventRow,
    ImageRow,
    JobRow,
    PackageRow,
    RecipeVersionRow,
    UpstreamReleaseRow,
)
from nanodistro.formats.pkginfo import apk_filename
from nanodistro.formats.version import compare
from nanodistro.web.context import WebContext

__all__ = [
    "CatalogOut",
    "CatalogRow",
    "PackageOut",
    "catalog",
    "json_ready",
    "package_detail",
    "package_file",
]

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


class VersionOut(BaseModel):
    version: str
    arch: str
    published_at: datetime
    repo_version: int | None
    sha256: str
    recipe_sha256: str | None
    channels: list[Literal["staging", "stable"]]


class JobOut(BaseModel):
    id: int
    kind: str
    state: str
    version: str | None
    created_at: datetime
    finished_at: datetime | None
    error: str | None
    has_log: bool
    url: str = Field(description="The job's page (its log is /api/jobs/{id}/log).")


class TestOut(BaseModel):
    passed: bool
    time: datetime
    version: str | None
    against: list[str]
    error: str | None


class AdvisoryOut(BaseModel):
    id: str
    package: str
    aliases: list[str]
    status: str = Field(description="Type of the advisory's latest event.")
    fixed_version: str | None
    note: str
    timestamp: str


class DependentOut(BaseModel):
    package: str
    version: str
    via: list[str] = Field(description="Which of its dependencies this package provides.")


class PackageOut(BaseModel):
    package: str
    recipe: str
    current_version: str | None = Field(description="Version in stable, else in staging.")
    stable: str | None
    staging: str | None
    status: Status
    freshness: Freshness
    versions: list[VersionOut] = Field(description="Every version published, newest first.")
    jobs: list[JobOut] = Field(description="Build and test jobs of the recipe, newest first.")
    tests: list[TestOut] = Field(description="Test results of the recipe, newest first.")
    advisories: list[AdvisoryOut]
    advisory_errors: list[str]
    dependents: list[DependentOut] = Field(
        description="Packages of the current channel whose dependencies this one provides."
    )
    images: list[str] = Field(description="Images whose newest build holds this package.")
    sbom_url: str | None
    provenance_url: str | None
    rebuild_url: str


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


# ----------------------------------------------------------------------------------- package


def _recipe_exists(context: WebContext, recipe: str) -> bool:
    return recipe in _recipe_names(context)


def _recipe_shas(context: WebContext, recipe: str) -> dict[str, str]:
    with context.state.session() as session:
        found = session.scalars(select(RecipeVersionRow).where(RecipeVersionRow.recipe == recipe))
        # a version rebuilt from a changed recipe has several rows: the newest is what's published
        return {r.version: r.recipe_sha256 for r in sorted(found, key=lambda r: r.id)}


def _jobs(context: WebContext, recipe: str) -> list[JobOut]:
    statement = (
        select(JobRow)
        .where(JobRow.kind.in_(["build", "test"]), JobRow.inputs["recipe"].as_string() == recipe)
        .order_by(JobRow.id.desc())
        .limit(_LIST_LIMIT)
    )
    with context.state.session() as session:
        return [
            JobOut(
                id=job.id,
                kind=job.kind,
                state=job.state,
                version=str(job.inputs.get("version")) if job.inputs.get("version") else None,
                created_at=job.created_at,
                finished_at=job.finished_at,
                error=job.error,
                has_log=bool(job.log_path),
                url=f"/jobs/{job.id}",
            )
            for job in session.scalars(statement)
        ]


def _tests(context: WebContext, recipe: str) -> list[TestOut]:
    statement = (
        select(EventRow)
        .where(
            EventRow.subject == f"recipe:{recipe}",
            EventRow.type.in_([events.TEST_PASSED, events.TEST_FAILED]),
        )
        .order_by(EventRow.id.desc())
        .limit(_LIST_LIMIT)
    )
    with context.state.session() as session:
        found = []
        for row in session.scalars(statement):
            against = row.payload.get("against")
            found.append(
                TestOut(
                    passed=row.type == events.TEST_PASSED,
                    time=row.time,
                    version=row.payload.get("version"),
                    against=[str(a) for a in against]
                    if isinstance(against, list)
                    else ([str(against)] if against else []),
                    error=row.payload.get("error"),
                )
            )
        return found


def _advisories(context: WebContext, names: list[str]) -> tuple[list[AdvisoryOut], list[str]]:
    """The latest event of each advisory in the documents of ``names`` (package and recipe)."""
    from nanodistro.advisory.decode import parse_document
    from nanodistro.advisory.latest import triage_entries
    from nanodistro.advisory.store import document_path

    found: list[AdvisoryOut] = []
    errors: list[str] = []
    for name in dict.fromkeys(names):
        try:
            path = document_path(context.workspace.advisories_dir, name)
        except NanodistroError:
            continue
        if not path.is_file():
            continue
        try:
            document = parse_document(path.read_bytes(), str(path))
        except (NanodistroError, OSError) as error:
            errors.append(str(error))
            continue
        for entry in triage_entries([document]):
            found.append(
                AdvisoryOut(
                    id=entry.advisory_id,
                    package=entry.package,
                    aliases=sorted(entry.aliases),
                    status=entry.kind,
                    fixed_version=entry.fixed_version,
                    note=entry.note,
                    timestamp=entry.timestamp,
                )
            )
    return found, errors


@functools.lru_cache(maxsize=16)
def _index_packages(
    path: str, _mtime_ns: int
) -> list[tuple[str, str, tuple[str, ...], tuple[str, ...]]]:
    """(name, version, depends, provides) of an APKINDEX; cached by path and mtime (the index of
    a repository version never changes)."""
    from nanodistro.formats.apkindex import read_index

    index = read_index(Path(path).read_bytes(), where=path, keyring=None)
    return [(p.name, p.version, tuple(p.depends), tuple(p.provides)) for p in index.packages]


def _dependents(
    context: WebContext, name: str, arch: str, channels: _Channels
) -> list[DependentOut]:
    """Packages of stable (else staging) whose runtime dependencies name this package or
    something it provides (so:, pc:, cmd: ...)."""
    from nanodistro.graph.corpus import atom_name
    from nanodistro.repo.repository import INDEX_FILE

    channel = "stable" if channels.numbers.get("stable") else "staging"
    path = context.workspace.packages_dir / channel / arch / INDEX_FILE
    try:
        listed = _index_packages(str(path), path.stat().st_mtime_ns)
    except (OSError, NanodistroError):
        return []
    mine = next((p for p in listed if p[0] == name), None)
    if mine is None:
        return []
    offered = {name, *(n for atom in mine[3] if (n := atom_name(atom)))}
    found = []
    for other, version, depends, _provides in listed:
        via = sorted({n for atom in depends if (n := atom_name(atom)) in offered})
        if via and other != name:
            found.append(DependentOut(package=other, version=version, via=via))
    return sorted(found, key=lambda d: d.package)


def _images(context: WebContext, wanted: set[str]) -> list[str]:
    """Images whose newest build lists one of ``wanted`` ('name-version')."""
    newest = select(func.max(ImageRow.id)).group_by(ImageRow.name)
    with context.state.session() as session:
        rows = session.scalars(select(ImageRow).where(ImageRow.id.in_(newest)))
        return sorted(r.name for r in rows if wanted & set(r.packages or []))


def package_detail(context: WebContext, name: str) -> PackageOut | None:
    """Everything the package page shows; None when no package or recipe has that name."""
    rows = _packages(context, name)
    recipe = max(rows, key=lambda r: r.id).recipe if rows else name
    if not rows and not _recipe_exists(context, name):
        return None
    channels = _channels(context)
    ordered = _pick(rows, _arch_order(context, rows))
    stable = _in_channel(ordered, channels, "stable")
    staging = _in_channel(ordered, channels, "staging")
    seen = _releases(context, recipe)
    status, _when = _status(
        recipe, _recipe_status(context, recipe), _channel_head(context), channels, stable, staging
    )
    shas = _recipe_shas(context, recipe)
    versions = [
        VersionOut(
            version=r.version,
            arch=r.arch,
            published_at=r.published_at,
            repo_version=r.repo_version,
            sha256=r.sha256,
            recipe_sha256=shas.get(r.version),
            channels=[c for c in ("staging", "stable") if channels.has(c, r)],
        )
        for r in sorted(rows, key=lambda r: r.id, reverse=True)
    ]
    current = stable or staging
    advisories, advisory_errors = _advisories(context, [name, recipe])
    return PackageOut(
        package=name,
        recipe=recipe,
        current_version=current.version if current else None,
        stable=stable.version if stable else None,
        staging=staging.version if staging else None,
        status=status,  # type: ignore[arg-type]
        freshness=_freshness_cell(
            stable, recipe, seen, _newest_upstream(seen), _first_promoted(context)
        ),
        versions=versions,
        jobs=_jobs(context, recipe),
        tests=_tests(context, recipe),
        advisories=advisories,
        advisory_errors=advisory_errors,
        dependents=_dependents(context, name, current.arch, channels) if current else [],
        images=_images(context, {f"{r.name}-{r.version}" for r in rows}),
        sbom_url=f"/api/packages/{name}/sbom" if current else None,
        provenance_url=f"/api/packages/{name}/provenance" if current else None,
        rebuild_url=f"/api/recipes/{recipe}/rebuild",
    )


def package_file(context: WebContext, name: str, version: str | None = None) -> Path | None:
    """The ``.apk`` of ``name``: ``version`` if given, else the one in stable, else staging,
    else the newest published; None when there is none on disk."""
    rows = _pick(_packages(context, name), context.workspace.archs)
    if version is not None:
        rows = [r for r in rows if r.version == version]
    else:
        channels = _channels(context)
        chosen = _in_channel(rows, channels, "stable") or _in_channel(rows, channels, "staging")
        rows = [chosen] if chosen else rows
    for row in rows:
        path = context.workspace.packages_dir / row.arch / apk_filename(row.name, row.version)
        if path.is_file():
            return path
    return None


def json_ready(model: BaseModel) -> Any:
    """A model as JSON-compatible data (for a page's inline chart data)."""
    return model.model_dump(mode="json")
