"""Shared test fixtures: paths to the ecosystem's real files in ../shared/fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NANODISTRO_SHARED", REPO_ROOT.parent / "shared"))
FIXTURES = SHARED / "fixtures"
THIRD_PARTY = FIXTURES / "third_party"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.fail(f"fixtures not found at {FIXTURES} (set NANODISTRO_SHARED)")
    return FIXTURES


@pytest.fixture(scope="session")
def third_party() -> Path:
    return THIRD_PARTY
