"""Alembic environment: run by ``state/db.py`` with an open connection, never from alembic.ini."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("the state migrations run through nanodistro.factory.state.open_state")

context.configure(connection=connection, target_metadata=None)
with context.begin_transaction():
    context.run_migrations()
