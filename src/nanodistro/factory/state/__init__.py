"""The factory's durable state: one SQL database (SQLite by default, any SQLAlchemy URL).

``open_state`` migrates the database to the newest schema (Alembic, shipped in ``migrations/``)
and hands out sessions; ``models`` holds the typed table classes. The event log
(``factory/events.py``) and the job store (``factory/jobs.py``) are built on it.
"""

from __future__ import annotations

from nanodistro.factory.state.db import State, default_state_url, open_state, workspace_state_url

__all__ = ["State", "default_state_url", "open_state", "workspace_state_url"]
