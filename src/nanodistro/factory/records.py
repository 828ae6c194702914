"""The factory's rows besides the event log: upstream releases seen, packages published,
images built. Each insert is idempotent (a crashed cycle redoes its step and must not fail or
duplicate on the row it already wrote)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from nanodistro.factory import events
from nanodistro.factory.state.db import State
from nanodistro.factory.state.models import (
    ImageRow,
    PackageRow,
    RecipeVersionRow,
    UpstreamReleaseRow,
)


def record_release(
    state: State, recipe: str, version: str, provider: str, published_at: datetime | None
) -> bool:
    """Remember an upstream release; False when it was known already."""
    with state.session() as session, session.begin():
        found = session.scalar(
            select(UpstreamReleaseRow).where(
                UpstreamReleaseRow.recipe == recipe, UpstreamReleaseRow.version == version
            )
        )
        if found is not None:
            return False
        session.add(
            UpstreamReleaseRow(
                recipe=recipe,
                version=version,
                provider=provider,
                published_at=published_at,
                first_seen=datetime.now(UTC),
            )
        )
    return True


def releases(state: State) -> dict[tuple[str, str], UpstreamReleaseRow]:
    with state.session() as session:
        rows = list(session.scalars(select(UpstreamReleaseRow)))
        session.expunge_all()
    return {(r.recipe, r.version): r for r in rows}


def record_package(
    state: State,
    *,
    name: str,
    version: str,
    arch: str,
    sha256: str,
    recipe: str,
    repo_version: int | None,
) -> bool:
    """A package newly in the repository; False when it was recorded already."""
    with state.session() as session, session.begin():
        found = session.scalar(
            select(PackageRow).where(
                PackageRow.name == name, PackageRow.version == version, PackageRow.arch == arch
            )
        )
        if found is not None:
            return False
        session.add(
            PackageRow(
                name=name,
                version=version,
                arch=arch,
                sha256=sha256,
                recipe=recipe,
                repo_version=repo_version,
                published_at=datetime.now(UTC),
            )
        )
    return True


def record_recipe_version(
    state: State, *, recipe: str, version: str, recipe_sha256: str, repo_version: int | None
) -> bool:
    """A recipe version newly in the repository; False when it was recorded already."""
    with state.session() as session, session.begin():
        found = session.scalar(
            select(RecipeVersionRow).where(
                RecipeVersionRow.recipe == recipe,
                RecipeVersionRow.version == version,
                RecipeVersionRow.recipe_sha256 == recipe_sha256,
            )
        )
        if found is not None:
            return False
        session.add(
            RecipeVersionRow(
                recipe=recipe,
                version=version,
                recipe_sha256=recipe_sha256,
                repo_version=repo_version,
                published_at=datetime.now(UTC),
            )
        )
    return True


def recipe_versions(state: State) -> list[RecipeVersionRow]:
    with state.session() as session:
        rows = list(session.scalars(select(RecipeVersionRow).order_by(RecipeVersionRow.id)))
        session.expunge_all()
    return rows


def packages(state: State) -> list[PackageRow]:
    with state.session() as session:
        rows = list(session.scalars(select(PackageRow).order_by(PackageRow.id)))
        session.expunge_all()
    return rows


def record_image(
    state: State,
    *,
    name: str,
    digest: str,
    tag: str,
    repo_version: int | None,
    packages: Iterable[str],
) -> bool:
    with state.session() as session, session.begin():
        found = session.scalar(
            select(ImageRow).where(ImageRow.name == name, ImageRow.digest == digest)
        )
        if found is not None:
            return False
        session.add(
            ImageRow(
                name=name,
                digest=digest,
                tag=tag,
                repo_version=repo_version,
                packages=sorted(packages),
                created_at=datetime.now(UTC),
            )
        )
    return True


def image_rows(state: State) -> list[ImageRow]:
    with state.session() as session:
        rows = list(session.scalars(select(ImageRow).order_by(ImageRow.id)))
        session.expunge_all()
    return rows


def last_event(
    state: State, subject: str, types: Iterable[str], **payload: Any
) -> events.Event | None:
    """The newest event of ``subject`` among ``types`` whose payload has every given value."""
    for event in reversed(events.query(state, subject=subject, types=list(types))):
        if all(event.payload.get(k) == v for k, v in payload.items()):
            return event
    return None
