"""Shared test fixtures: paths to the ecosystem's real files in ../shared/fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixture_paths import FIXTURES, REPO_ROOT, SHARED, THIRD_PARTY

__all__ = ["FIXTURES", "REPO_ROOT", "SHARED", "THIRD_PARTY"]


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.fail(f"fixtures not found at {FIXTURES} (set NANODISTRO_SHARED)")
    return FIXTURES


@pytest.fixture(scope="session")
def third_party() -> Path:
    return THIRD_PARTY
