"""The first schema: upstream releases, packages, images, jobs and the append-only event log.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Migrations spell their tables out instead of importing ``models``: a revision must keep creating
exactly the schema it created when it was written, whatever the models say later.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from nanodistro.factory.state.types import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_APPEND_ONLY = "events are append-only"


def _append_only_sqlite() -> None:
    for action in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER events_no_{action.lower()} BEFORE {action} ON events "
            f"BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}'); END"
        )


def _append_only_postgresql() -> None:
    op.execute(
        "CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN RAISE EXCEPTION '{_APPEND_ONLY}'; END $$"
    )
    op.execute(
        "CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON events "
        "FOR EACH STATEMENT EXECUTE FUNCTION events_append_only()"
    )


def upgrade() -> None:
    op.create_table(
        "upstream_releases",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("recipe", sa.String(255), nullable=False),
        sa.Column("version", sa.String(255), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("published_at", UTCDateTime(), nullable=True),
        sa.Column("first_seen", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("recipe", "version"),
    )
    op.create_table(
        "packages",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("version", sa.String(255), nullable=False),
        sa.Column("arch", sa.String(32), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("recipe", sa.String(255), nullable=False),
        sa.Column("repo_version", sa.Integer(), nullable=True),
        sa.Column("published_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("name", "version", "arch"),
    )
    op.create_table(
        "images",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("digest", sa.String(100), nullable=False),
        sa.Column("tag", sa.String(128), nullable=False),
        sa.Column("repo_version", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("packages", sa.JSON(), nullable=False),
        sa.UniqueConstraint("name", "digest"),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("key", sa.String(64), nullable=False, unique=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("not_before", UTCDateTime(), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("log_path", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("owner", sa.String(255), nullable=True),
    )
    op.create_index("ix_jobs_state_not_before", "jobs", ["state", "not_before"])
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("time", UTCDateTime(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
    )
    op.create_index("ix_events_subject", "events", ["subject"])
    op.create_index("ix_events_time", "events", ["time"])
    # The log is evidence (freshness, audits): the database itself refuses edits, not just the API.
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        _append_only_sqlite()
    elif dialect == "postgresql":
        _append_only_postgresql()


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER events_append_only ON events")
        op.execute("DROP FUNCTION events_append_only()")
    for table in ("events", "jobs", "images", "packages", "upstream_releases"):
        op.drop_table(table)
