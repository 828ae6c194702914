"""Recipe versions: which recipe bytes each published version was built from.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from nanodistro.factory.state.types import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recipe_versions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("recipe", sa.String(255), nullable=False),
        sa.Column("version", sa.String(255), nullable=False),
        sa.Column("recipe_sha256", sa.String(64), nullable=False),
        sa.Column("repo_version", sa.Integer(), nullable=True),
        sa.Column("published_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("recipe", "version", "recipe_sha256"),
    )


def downgrade() -> None:
    op.drop_table("recipe_versions")
