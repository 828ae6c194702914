"""(filled in by the pages_images work)"""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
