"""Alembic environment for the state database (a package so the scripts ship with nanodistro)."""
