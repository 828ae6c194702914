"""(filled in by the hooks work)"""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()


def services_for(context: object) -> list[object]:
    """Background services the serving process starts (the outgoing webhook dispatcher)."""
    return []
