"""The API judged against its own OpenAPI document by schemathesis: generated requests to every
operation (with a valid token, so writes run too) never get a 5xx, and every response matches
the schema declared for it. Writes without a token are refused (401) and queue nothing.

The app is built in-process over a small synthetic workspace with rows in every table
(synthetic_catalog.py) and no runner, so the runs that writes queue stay queued.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)
from synthetic_catalog import ARCH, Synthetic, generate

WRITE_METHODS = ("post", "put", "patch", "delete")
# server-sent events stream until the run ends: followed by test_run_log_streams_to_its_end
STREAMING = "/api/runs/{run_id}/log"
EXAMPLES = 25  # per operation and mode: the whole API in well under 2 minutes


@dataclass
class Api:
    app: FastAPI
    token: str
    catalog: Synthetic


def build_app(root: Path) -> tuple[FastAPI, Any]:
    from nanodistro.factory.state import open_state
    from nanodistro.factory.state.db import default_state_url
    from nanodistro.factory.workspace import load_workspace
    from nanodistro.web.app import create_app
    from nanodistro.web.context import WebContext
    from nanodistro.web.runs import RunStore
    from nanodistro.web.settings import serve_settings

    workspace = load_workspace(root)
    state = open_state(default_state_url(root))
    runs = RunStore(state, root / ".nanodistro" / "runs")
    context = WebContext(workspace, state, serve_settings(workspace), runs, runner=None)
    return create_app(context), state


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    from nanodistro.web.auth import create_token

    catalog = generate(
        tmp_path_factory.mktemp("api") / "ws", recipes=40, images=5, image_packages=8
    )
    # the GitHub hook configured (it answers 404 without a secret), so it is fuzzed too
    (catalog.root / "keys" / "github-webhook.secret").write_text("s3cret-for-github-hooks\n")
    with (catalog.root / "nanodistro.toml").open("a") as toml:
        toml.write('\n[webhooks]\ngithub-secret-file = "keys/github-webhook.secret"\n')
    app, state = build_app(catalog.root)
    token = create_token(state, "schemathesis")
    try:
        yield Api(app, token, catalog)
    finally:
        state.close()


def _operations(app: FastAPI) -> list[Any]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(path=STREAMING)
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_conforms_to_its_schema(api: Api, mode: GenerationMode) -> None:
    """Every operation, valid inputs (positive) and invalid ones (negative): no 5xx, the
    status code and the body as the schema declares them. All failures are reported at once."""
    operations = _operations(api.app)
    assert any(op.path == "/api/cycles" for op in operations)
    failures: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def exercise(case: Any) -> None:
            case.call_and_validate(
                headers={"Authorization": f"Bearer {api.token}"},
                checks=[not_a_server_error, response_schema_conformance, status_code_conformance],
            )

        try:
            exercise()
        except Unsatisfiable:
            # an operation without parameters or body (/healthz) has no invalid input to make
            assert mode == GenerationMode.NEGATIVE, operation.path
        except Exception as failure:  # one operation's failure must not hide another's
            failures.append(f"{operation.method.upper()} {operation.path}: {failure}")
    assert not failures, "\n\n".join(failures)


def _sample_path(path: str, catalog: Synthetic) -> str:
    """``path`` with its parameters filled in with things that exist."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if "image" in name:
            return catalog.images[0]
        if name.endswith("id") or name in ("number", "version"):
            return "1"
        return catalog.recipes[0]

    return re.sub(r"\{([^}]+)\}", value, path)


def _write_routes(app: FastAPI) -> list[tuple[str, str]]:
    document = TestClient(app).get("/openapi.json").json()
    return sorted(
        (method, path)
        for path, operations in document["paths"].items()
        for method in operations
        if method in WRITE_METHODS
    )


def test_every_write_needs_a_token(api: Api) -> None:
    routes = _write_routes(api.app)
    assert ("post", "/api/cycles") in routes
    client = TestClient(api.app)
    before = client.get("/api/runs", params={"limit": 500}).json()
    refused = {}
    for method, path in routes:
        url = _sample_path(path, api.catalog)
        for headers, cookies in (
            ({}, {}),
            ({"Authorization": "Bearer ndt_not-a-real-token"}, {}),
            ({"Authorization": "Basic dXNlcjpwYXNz"}, {}),
            # the console's sign-in cookie carries the token for page reads; a write sent
            # with only the cookie (another site's form posting here) is refused
            ({}, {"nanodistro_token": api.token}),
        ):
            client.cookies.clear()
            answer = client.request(method, url, headers=headers, cookies=cookies, json={})
            refused[(method, path, json.dumps(headers), bool(cookies))] = answer.status_code
    client.cookies.clear()
    allowed = {k: v for k, v in refused.items() if v != 401}
    assert not allowed, f"writes answered without a valid token: {allowed}"
    # and nothing was queued
    assert client.get("/api/runs", params={"limit": 500}).json() == before


def test_a_write_with_the_token_is_accepted(api: Api) -> None:
    client = TestClient(api.app)
    auth = {"Authorization": f"Bearer {api.token}"}
    answer = client.post("/api/cycles", headers=auth, json={"monitor": False})
    assert answer.status_code == 202, answer.text
    run = answer.json()
    assert run["state"] == "queued" and run["requested_by"] == "schemathesis"
    assert client.get(f"/api/runs/{run['id']}").json()["params"] == {"monitor": False}
    missing = client.post("/api/recipes/no-such-recipe/rebuild", headers=auth)
    assert missing.status_code == 404
    assert "no-such-recipe" in missing.json()["detail"]


def test_run_log_streams_to_its_end(api: Api) -> None:
    client = TestClient(api.app)
    finished = client.get("/api/runs", params={"state": "succeeded", "limit": 1}).json()[0]
    text = client.get(finished["log_url"]).text
    lines = [line for line in text.splitlines() if line.startswith("data: ")]
    assert lines[-2:] == [f"data: {finished['started_at'][11:19]} run {finished['id']} "
                          "succeeded in 42.0s", "data: "]  # fmt: skip
    assert text.rstrip().endswith("event: end\ndata:")
    assert client.get("/api/runs/999999/log").status_code == 404


# ------------------------------------------------------- the synthetic workspace is consistent


def test_synthetic_catalog_is_consistent(tmp_path: Path) -> None:
    """What bench/bench_console.py and the API tests stand on: the files and the rows agree
    the way a real factory's would."""
    from nanodistro.factory import events
    from nanodistro.factory.freshness import freshness
    from nanodistro.factory.promote import current_stable, stable_history
    from nanodistro.factory.records import packages
    from nanodistro.factory.state import open_state
    from nanodistro.factory.state.db import default_state_url
    from nanodistro.factory.workspace import load_workspace
    from nanodistro.image.tags import list_tags
    from nanodistro.recipe.loading import load_recipe
    from nanodistro.repo.versions import channel_version, read_version

    catalog = generate(tmp_path / "ws", recipes=30, images=4, image_packages=6, repo_versions=4)
    workspace = load_workspace(catalog.root)
    files = workspace.recipe_files()
    assert [f.stem for f in files] == catalog.recipes
    for path in files:  # valid recipes at the newest version
        recipe = load_recipe(path)
        assert f"{recipe.package.version}-r0" == catalog.versions[path.stem][-1]
    assert [f.stem for f in workspace.image_files()] == catalog.images
    assert catalog.rows["packages"] == 2 * len(catalog.recipes)
    assert catalog.rows["events"] >= 10 * len(catalog.recipes)

    repo = workspace.packages_dir
    assert channel_version(repo, "stable") == channel_version(repo, "staging") == 4
    newest = read_version(repo, 4).packages[ARCH]
    assert sorted(newest) == sorted(f"{r}-{v[-1]}.apk" for r, v in catalog.versions.items())

    with open_state(default_state_url(catalog.root)) as state:
        rows = packages(state)
        published = {
            (e.payload["file"], e.payload["sha256"])
            for e in events.query(state, types=[events.PUBLISHED])
        }
        assert {(f"{p.name}-{p.version}.apk", p.sha256) for p in rows} == published
        for row in rows:  # each package in the version the row names, with its digest
            assert read_version(repo, row.repo_version).packages[ARCH][
                f"{row.name}-{row.version}.apk"
            ] == row.sha256  # fmt: skip
        names = {f"{p.name}-{p.version}" for p in rows}
        log = events.query(state)
        assert [e.time for e in log] == sorted(e.time for e in log)
        history = stable_history(state)
        assert [s.version for _e, s in history] == [1, 2, 3, 4]
        for event, _stable in history:  # what a promotion brought is in that version
            held = read_version(repo, event.payload["version"]).packages[ARCH]
            assert {p.split("/", 1)[1] for p in event.payload["packages"]} <= set(held)
        report = freshness(state)
        assert all(p.promoted is not None and p.released is not None for p in report.packages)
        assert report.stats()["release_to_promoted"]["count"] == 2 * len(catalog.recipes)
        with state.session() as session:
            from sqlalchemy import select

            from nanodistro.factory.state.models import ImageRow

            images = list(session.scalars(select(ImageRow).order_by(ImageRow.id)))
        for image in images:
            assert set(image.packages) <= names, image.name

    # the layouts: every build tagged, stable on the newest, blobs named by their digest
    stable = current_stable(workspace)
    assert stable.version == 4
    assert stable.images == {i: b[-1][1] for i, b in catalog.image_builds.items()}
    assert history[-1][1].images == stable.images
    for image, builds in catalog.image_builds.items():
        layout = workspace.image_out_dir / image
        tags = list_tags(layout)
        assert {f"build-{k}" for k in range(1, len(builds) + 1)} <= set(tags)
        for _n, digest in builds:
            blob = layout / "blobs" / "sha256" / digest.split(":", 1)[1]
            assert "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest() == digest
    for run_log in (catalog.root / ".nanodistro" / "runs").glob("*.log"):
        assert run_log.read_text().rstrip().endswith("succeeded in 42.0s")
