"""The miniature catalog after its first factory cycle, with the factory's default settings
(libgreet's upstream watched, a git work tree, one reproducibility check a cycle), built ONCE per
test session for every factory module that starts from it (test_factory_loop, test_factory_crash,
test_factory_vulnerabilities, test_reproducibility). Each of those used to run the same first cycle
in its own module fixture (~25 s each); they now copy this one (copy_first_cycle) and never change
it. The upstream keeps serving for the whole session: a test that publishes a libgreet release into
``served`` removes it again (as the modules already did), so the next module sees 1.2.0 only.

The web tests keep their own session catalog (tests/web/shared_catalog.py): it is built with
``sample = 0``, which their later cycles rely on.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
class FirstCycle:
    root: Path  # never changed by a test: copy it (copy_first_cycle)
    served: Path  # the upstream's release folder (release_libgreet writes there)
    url: str
    digests: dict[str, str]  # sha256 of each release tarball the recipes pin
    _report: dict[str, Any]

    @property
    def report(self) -> dict[str, Any]:
        """The first cycle's ``factory run --once --json`` report (a copy a test may change)."""
        return copy.deepcopy(self._report)


@pytest.fixture(scope="session")
def first_cycle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FirstCycle]:
    """Four recipes built, tested, published and promoted with their two images."""
    require_tools("bwrap", "gcc", "umoci", "runc", "git")
    base = tmp_path_factory.mktemp("first-cycle")
    with serve_upstream(base) as (url, digests):
        root = write_workspace(base / "ws", url, digests)
        watch_libgreet(root, url)
        commit_workspace(root)
        # its own accepted-index file while it builds: the per-test one (tests/conftest.py) is
        # not set up yet, and the session must not keep pointing at this one
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("NANODISTRO_INDEX_STATE", str(base / "index-state.json"))
            report = factory_once(root)
        assert report["status"] == "promoted", json.dumps(report, indent=1)[:4000]
        yield FirstCycle(root, base / "upstream", url, digests, report)


def copy_first_cycle(built: FirstCycle, target: Path) -> Path:
    """A copy of the built workspace (git history, state, repository, images) at target/ws."""
    root = target / "ws"
    shutil.copytree(built.root, root, symlinks=True)
    return root
