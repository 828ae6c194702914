"""Fixtures of the web tests."""

from shared_catalog import built_catalog

__all__ = ["built_catalog"]
