"""Timestamps as the formats we write spell them."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["rfc3339"]


def rfc3339(epoch: int) -> str:
    """``2023-11-14T22:13:20Z``: UTC, whole seconds (OCI ``created``, SPDX ``created``)."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
