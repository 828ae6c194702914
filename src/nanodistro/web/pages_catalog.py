"""(filled in by the pages_catalog work)"""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
