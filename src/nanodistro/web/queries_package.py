"""What the package page (and ``/api/packages/NAME``) shows: one package's versions, jobs,
tests, advisories, dependents and the images holding it, from the factory's state and the
repository; the channel and state reads it shares with the catalog live in queries_catalog.

A fixed number of queries per page; the stable APKINDEX is read for dependents (cached: a
repository version never changes), and an ``.apk`` only when its SBOM is asked for.
"""

from __future__ import annotations

import functools
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy import func, select

from nanodistro.errors import NanodistroError
from nanodistro.factory import events
from nanodistro.factory.state.models import EventRow, ImageRow, JobRow, RecipeVersionRow
from nanodistro.formats.pkginfo import apk_filename
from nanodistro.web.context import WebContext
from nanodistro.web.queries_catalog import (
    _LIST_LIMIT,
    Freshness,
    Status,
    _arch_order,
    _channel_head,
    _Channels,
    _channels,
    _first_promoted,
    _freshness_cell,
    _in_channel,
    _newest_upstream,
    _packages,
    _pick,
    _recipe_names,
    _recipe_status,
    _releases,
    _status,
)

__all__ = ["PackageOut", "package_detail", "package_file"]


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
