"""The factory's rows besides the event log: upstream releases seen, recipe versions and
packages published, images built. Each insert is idempotent (a crashed cycle redoes its step and
must not fail or duplicate on the row it already wrote)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import select

from nanodistro.factory import events
from nanodistro.factory.state.db import State
from nanodistro.factory.state.models import (
    Base,
    ImageRow,
    PackageRow,
    RecipeVersionRow,
    UpstreamReleaseRow,
)

RowT = TypeVar("RowT", bound=Base)


def _insert_once(state: State, model: type[Base], key: dict[str, Any], **values: Any) -> bool:
    """Add a ``model`` row with ``key`` and ``values`` unless one with ``key`` exists (False);
    the row's time columns default to now (``models``)."""
    with state.session() as session, session.begin():
        found = session.scalar(
            select(model).where(*(getattr(model, column) == v for column, v in key.items()))
        )
        if found is not None:
            return False
        session.add(model(**key, **values))
    return True


def _all_rows(state: State, model: type[RowT]) -> list[RowT]:
    """Every row of ``model`` in insertion order, detached from the session."""
    with state.session() as session:
        rows = list(session.scalars(select(model).order_by(model.id)))  # type: ignore[attr-defined]
        session.expunge_all()
    return rows


def record_release(
    state: State, recipe: str, version: str, provider: str, published_at: datetime | None
) -> bool:
    """Remember an upstream release; False when it was known already."""
    return _insert_once(
        state,
        UpstreamReleaseRow,
        {"recipe": recipe, "version": version},
        provider=provider,
        published_at=published_at,
    )


def releases(state: State) -> dict[tuple[str, str], UpstreamReleaseRow]:
    return {(r.recipe, r.version): r for r in _all_rows(state, UpstreamReleaseRow)}


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
    return _insert_once(
        state,
        PackageRow,
        {"name": name, "version": version, "arch": arch},
        sha256=sha256,
        recipe=recipe,
        repo_version=repo_version,
    )


def record_recipe_version(
    state: State, *, recipe: str, version: str, recipe_sha256: str, repo_version: int | None
) -> bool:
    """A recipe version newly in the repository; False when it was recorded already."""
    return _insert_once(
        state,
        RecipeVersionRow,
        {"recipe": recipe, "version": version, "recipe_sha256": recipe_sha256},
        repo_version=repo_version,
    )


def recipe_versions(state: State) -> list[RecipeVersionRow]:
    return _all_rows(state, RecipeVersionRow)


def packages(state: State) -> list[PackageRow]:
    return _all_rows(state, PackageRow)


def record_image(
    state: State,
    *,
    name: str,
    digest: str,
    tag: str,
    repo_version: int | None,
    packages: Iterable[str],
) -> bool:
    return _insert_once(
        state,
        ImageRow,
        {"name": name, "digest": digest},
        tag=tag,
        repo_version=repo_version,
        packages=sorted(packages),
    )


def image_rows(state: State) -> list[ImageRow]:
    return _all_rows(state, ImageRow)


def last_event(
    state: State, subject: str, types: Iterable[str], **payload: Any
) -> events.Event | None:
    """The newest event of ``subject`` among ``types`` whose payload has every given value."""
    for event in reversed(events.query(state, subject=subject, types=list(types))):
        if all(event.payload.get(k) == v for k, v in payload.items()):
            return event
    return None
