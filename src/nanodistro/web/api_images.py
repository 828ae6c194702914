"""(filled in by the api_images work)"""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
