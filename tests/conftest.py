"""Shared test fixtures: paths to the ecosystem's real files in ../shared/fixtures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from catalog_build import catalog_build
from fixture_paths import FIXTURES, REPO_ROOT, SHARED, THIRD_PARTY

__all__ = ["FIXTURES", "REPO_ROOT", "SHARED", "THIRD_PARTY", "catalog_build"]


@pytest.fixture(autouse=True)
def _index_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test remembers accepted indexes (resolve.replay) in its own file, never in ~/.cache:
    a later test's server may get an earlier one's port and serve a different repository."""
    path = tmp_path_factory.mktemp("index-state") / "index-state.json"
    monkeypatch.setenv("NANODISTRO_INDEX_STATE", str(path))
    return path


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.fail(f"fixtures not found at {FIXTURES} (set NANODISTRO_SHARED)")
    return FIXTURES


@pytest.fixture(scope="session")
def third_party() -> Path:
    return THIRD_PARTY


# Pass rates of the peer suites (apk-tools version.data and solver cases, VERIFY.json verdicts,
# the Wolfi recipe sample): collected by the tests, printed once at the end of every run.
_SCOREBOARD: list[str] = []


@pytest.fixture
def scoreboard() -> Callable[[str], None]:
    """Record a line such as ``version.data: 785/785 passed`` for the end-of-run summary."""
    return _SCOREBOARD.append


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _SCOREBOARD:
        terminalreporter.section("peer suites and reference agreement")
        for line in _SCOREBOARD:
            terminalreporter.write_line(line)
