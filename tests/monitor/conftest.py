"""Fixtures for monitor tests (the loopback upstream lives in upstream_server.py)."""

from __future__ import annotations

from upstream_server import upstream

__all__ = ["upstream"]
