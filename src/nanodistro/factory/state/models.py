"""The factory's tables (SQLAlchemy 2 typed declarative).

The schema itself is created and changed only by the Alembic migrations in ``migrations/``;
``tests/factory/test_state.py`` checks that these classes and the migrated schema agree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from nanodistro.factory.state.types import UTCDateTime, utcnow

__all__ = [
    "ApiTokenRow",
    "Base",
    "EventRow",
    "ImageRow",
    "JobRow",
    "PackageRow",
    "RecipeVersionRow",
    "RunRow",
    "UpstreamReleaseRow",
]

# No foreign keys on purpose: rows refer to each other by name and version, so the event log and
# the job history outlive a recipe or image removed from the workspace.


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[str]: JSON(),
    }


class UpstreamReleaseRow(Base):
    """An upstream version of a recipe's source, the first time the monitor saw it."""

    __tablename__ = "upstream_releases"
    __table_args__ = (UniqueConstraint("recipe", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recipe: Mapped[str] = mapped_column(String(255))
    version: Mapped[str] = mapped_column(String(255))
    provider: Mapped[str] = mapped_column(String(64))
    # The provider's own release time where it has one (GitHub, PyPI); freshness falls back to
    # first_seen otherwise.
    published_at: Mapped[datetime | None]
    first_seen: Mapped[datetime] = mapped_column(default=utcnow)


class RecipeVersionRow(Base):
    """A version of a recipe that reached the repository: its full version and the hash of the
    recipe bytes (+ its patches) it was built from, as recorded in its packages."""

    __tablename__ = "recipe_versions"
    __table_args__ = (UniqueConstraint("recipe", "version", "recipe_sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recipe: Mapped[str] = mapped_column(String(255))
    version: Mapped[str] = mapped_column(String(255))
    recipe_sha256: Mapped[str] = mapped_column(String(64))
    # The first repository version that holds its packages.
    repo_version: Mapped[int | None]
    published_at: Mapped[datetime] = mapped_column(default=utcnow)


class PackageRow(Base):
    """A package file published to the working repository."""

    __tablename__ = "packages"
    __table_args__ = (UniqueConstraint("name", "version", "arch"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    version: Mapped[str] = mapped_column(String(255))
    arch: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[str] = mapped_column(String(64))
    recipe: Mapped[str] = mapped_column(String(255))
    # The first repository version (repo/versions.py) that holds it, once snapshotted.
    repo_version: Mapped[int | None]
    published_at: Mapped[datetime] = mapped_column(default=utcnow)


class ImageRow(Base):
    """An image build: its manifest digest, the tag it got and the packages it holds."""

    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("name", "digest"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    digest: Mapped[str] = mapped_column(String(100))
    tag: Mapped[str] = mapped_column(String(128))
    repo_version: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # ["name-version", ...], sorted: what the image's closure was, for diffs and freshness.
    packages: Mapped[list[str]] = mapped_column(default=list)


class JobRow(Base):
    """A durable unit of work (factory/jobs.py), keyed by the digest of its inputs."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_state_not_before", "state", "not_before"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(64), unique=True)
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int]
    not_before: Mapped[datetime]
    inputs: Mapped[dict[str, Any]]
    result: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    log_path: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    owner: Mapped[str | None] = mapped_column(String(255))


class EventRow(Base):
    """One entry of the append-only event log (factory/events.py); ``id`` is the log order."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_subject", "subject"),
        Index("ix_events_time", "time"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    type: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(255))
    time: Mapped[datetime]
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ApiTokenRow(Base):
    """A token that may write through the API (web/auth.py): only its sha256 is kept, so the
    database never holds a usable secret."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class RunRow(Base):
    """Something asked of the factory (web/runs.py): a cycle, a rebuild, a promotion, a rollback
    or an upstream check, queued until the serving process's runner takes it."""

    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_state", "state"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    requested_by: Mapped[str] = mapped_column(String(255))
    # A webhook delivery id (GitHub's X-GitHub-Delivery): the same delivery sent twice is one run.
    dedup_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    result: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    log_path: Mapped[str | None] = mapped_column(Text)
