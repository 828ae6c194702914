"""Schema revisions, oldest first: ``0001_initial.py``, ... (Alembic ignores this file)."""
