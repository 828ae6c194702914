"""An in-process console over a temporary workspace, for the web tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from fastapi.testclient import TestClient

from nanodistro.factory.state.db import open_state, workspace_state_url
from nanodistro.factory.workspace import load_workspace
from nanodistro.web.app import create_app
from nanodistro.web.auth import create_token
from nanodistro.web.context import WebContext
from nanodistro.web.runs import FactoryRunner, RunStore
from nanodistro.web.settings import serve_settings


def empty_workspace(root: Path, extra_toml: str = "") -> Path:
    """A workspace with no recipes and no images (cycles on it finish in seconds)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "recipes").mkdir(exist_ok=True)
    (root / "images").mkdir(exist_ok=True)
    (root / "nanodistro.toml").write_text(
        '[workspace]\nname = "web"\narchs = ["x86_64"]\n\n[reproducibility]\nsample = 0\n'
        + extra_toml
    )
    return root


@contextlib.contextmanager
def console(root: Path, *, runner: bool = False) -> Iterator[tuple[TestClient, WebContext]]:
    """A TestClient on the workspace at ``root``; ``runner``: runs are executed (no scheduled
    cycles), else they stay queued."""
    workspace = load_workspace(root)
    state = open_state(workspace_state_url(workspace))
    reads = open_state(workspace_state_url(workspace), read_only=True)
    runs = RunStore(state, root / ".nanodistro" / "runs", reads)
    context = WebContext(workspace, reads, serve_settings(workspace), runs)
    if runner:
        context.runner = FactoryRunner(workspace, state, runs, interval=None)
    try:
        with TestClient(create_app(context)) as client:
            yield client, context
    finally:
        reads.close()
        state.close()


def bearer(context: WebContext, name: str = "tester") -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(context.write_state, name)}"}
