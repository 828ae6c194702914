"""The miniature catalog after its first factory cycle, built once per test session for every
web test that needs a real one (each works on its own copy); the fixture is registered by
tests/web/conftest.py."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mini_catalog import (
    commit_workspace,
    factory_once,
    serve_upstream,
    watch_libgreet,
    write_workspace,
)
from needs_tools import require_tools


@dataclass(frozen=True)
class BuiltCatalog:
    root: Path  # never changed by a test: copy it (copy_catalog)
    served: Path  # the upstream's release folder (release_libgreet writes there)
    url: str


@pytest.fixture(scope="session")
def built_catalog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuiltCatalog]:
    """Four recipes built, tested, published and promoted with their two images; libgreet's
    upstream watched (so a test can release a new version); no reproducibility sampling."""
    require_tools("bwrap", "gcc", "umoci", "runc", "git")
    base = tmp_path_factory.mktemp("web-catalog")
    with serve_upstream(base) as (url, digests):
        root = write_workspace(base / "ws", url, digests)
        with (root / "nanodistro.toml").open("a") as toml:
            toml.write("\n[reproducibility]\nsample = 0\n")
        watch_libgreet(root, url)
        commit_workspace(root)
        report = factory_once(root)
        assert report["status"] == "promoted", report
        yield BuiltCatalog(root, base / "upstream", url)


def copy_catalog(built: BuiltCatalog, target: Path) -> Path:
    """A copy of the built workspace (git history, state, repository, images) at target/ws."""
    root = target / "ws"
    shutil.copytree(built.root, root, symlinks=True)
    return root
