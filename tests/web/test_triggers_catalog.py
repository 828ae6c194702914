"""The API's triggers on the miniature catalog: rebuild a recipe, roll stable back, promote by
hand, check chosen upstreams — each a run the serving process's runner carries out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from shared_catalog import BuiltCatalog, copy_catalog
from test_runs import wait_done
from webapp import bearer, console

from nanodistro.factory import events
from nanodistro.factory.promote import current_stable
from nanodistro.factory.workspace import load_workspace

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def catalog(built_catalog: BuiltCatalog, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_catalog(built_catalog, tmp_path_factory.mktemp("triggers"))


def hello_in(root: Path, channel: str) -> set[str]:
    from nanodistro.repo.versions import channel_version, read_version

    workspace = load_workspace(root)
    version = channel_version(workspace.packages_dir, channel)
    assert version is not None
    names = read_version(workspace.packages_dir, version).packages["x86_64"]
    return {n for n in names if n.startswith("hello-")}


def test_rebuild_rollback_promote_and_check(catalog: Path) -> None:
    root = catalog
    with console(root, runner=True) as (client, context):
        headers = bearer(context, "release-manager")

        def run(path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
            answer = client.post(path, json=body, headers=headers)
            assert answer.status_code == 202, answer.text
            done = wait_done(client, answer.json()["id"], timeout=400)
            assert done["state"] == "succeeded", done
            return done

        # rebuild: an epoch bump (a git commit) and a cycle that builds and promotes it
        rebuilt = run("/api/recipes/hello/rebuild")
        assert rebuilt["result"]["version"] == "2.0-r1"
        assert rebuilt["result"]["status"] == "promoted"
        assert "hello-2.0-r1.apk" in hello_in(root, "stable")
        bump = events.query(context.state, subject="recipe:hello", types=[events.RECIPE_BUMPED])
        assert bump[-1].payload["reason"] == "rebuild requested by release-manager"
        assert bump[-1].payload["commit"]
        rebuilt_stable = current_stable(context.workspace)

        # rollback: stable (channel and image tags) back to the first promotion
        back = run("/api/rollback", {})
        assert back["result"]["to"]["version"] == 1
        assert hello_in(root, "stable") == {"hello-2.0-r0.apk"}
        assert current_stable(context.workspace).images["hello"] != rebuilt_stable.images["hello"]

        # promote by hand: staging (the rebuild) back to stable, the override on record
        run("/api/promote")
        assert current_stable(context.workspace) == rebuilt_stable
        promoted = events.query(context.state, subject="channel:stable", types=[events.PROMOTED])
        assert promoted[-1].payload["manual"] is True
        assert promoted[-1].payload["by"] == "release-manager"

        # a check of chosen upstreams (what webhooks schedule): only those are monitored
        checked, _ = context.runs.submit("check", {"recipes": ["ca-certs"]}, "test")
        assert context.runner is not None
        context.runner.wake()
        done = wait_done(client, checked.id, timeout=400)
        assert done["state"] == "succeeded", done
        log = Path(str(context.runs.get(checked.id).log_path)).read_text()  # type: ignore[union-attr]
        assert "monitor: checking 1 recipes" in log
        assert done["result"]["status"] == "up-to-date"  # type: ignore[index]
