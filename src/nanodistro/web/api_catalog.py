"""(filled in by the api_catalog work)"""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
