"""The miniature catalog built once per test session by ``run_catalog`` (the catalog build, not
the factory: one flat repository, images with flat ``sboms/``), for the modules that only read it
(tests/test_sbom_catalog.py, tests/test_apk_reference_clients.py). Each used to build the same
catalog in its own module fixture (~18 s each); each now gets its own copy (copy_catalog_build), so
a test that writes into its workspace cannot change what the other module sees.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mini_catalog import serve_upstream, write_workspace
from needs_tools import require_tools


@dataclass(frozen=True)
class CatalogBuild:
    root: Path  # never changed by a test: copy it (copy_catalog_build)
    images: tuple[str, ...]  # the names of the built images (out/images/<name>)


@pytest.fixture(scope="session")
def catalog_build(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CatalogBuild]:
    """Four recipes and two images, every one built (a failure fails the requesting test)."""
    from nanodistro.factory.catalog import run_catalog
    from nanodistro.factory.workspace import load_workspace

    require_tools("bwrap", "gcc", "umoci", "runc")
    base = tmp_path_factory.mktemp("catalog-build")
    with serve_upstream(base) as (url, digests):  # serving for the session, as it did per module
        workspace = load_workspace(write_workspace(base / "ws", url, digests))
        # its own accepted-index file while it builds: the per-test one (tests/conftest.py) is
        # not set up yet, and the session must not keep pointing at this one
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("NANODISTRO_INDEX_STATE", str(base / "index-state.json"))
            report = run_catalog(workspace)
        failed = [(r.name, r.error) for r in report.recipes if r.status == "failed"]
        failed += [(i.name, i.error) for i in report.images if i.status != "built"]
        if failed:
            pytest.fail(f"the miniature catalog did not build: {failed}")
        layouts = [Path(i.layout) for i in report.images]
        assert all(p.parent == workspace.image_out_dir for p in layouts), layouts
        yield CatalogBuild(workspace.root, tuple(sorted(p.name for p in layouts)))


def copy_catalog_build(built: CatalogBuild, target: Path) -> Path:
    """A copy of the built workspace (recipes, keys, repository, images) at target/ws."""
    root = target / "ws"
    shutil.copytree(built.root, root, symlinks=True)
    return root
