"""``nanodistro serve`` and ``nanodistro token`` as a user runs them: real subprocesses, a real
HTTP server on 127.0.0.1, the API called over the wire."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from serve_process import empty_workspace, serve

from cli_runner import run_cli


def tokens(workspace: Path) -> dict[str, dict[str, Any]]:
    listed = run_cli(workspace, "token", "list", str(workspace), "--json")
    assert listed.returncode == 0, listed.stderr
    return {row["name"]: row for row in json.loads(listed.stdout)}


def create_token(workspace: Path, name: str) -> str:
    created = run_cli(workspace, "token", "create", name, str(workspace))
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("ndt_") and len(token) > 40, created.stdout
    return token


def test_serve_help_names_its_options(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "serve", "--help")
    assert result.returncode == 0, result.stderr
    for option in ("--host", "--port", "--interval", "--no-loop", "--no-monitor", "--jobs"):
        assert option in result.stdout, option
    assert "/openapi.json" in result.stdout


def test_token_create_list_revoke(tmp_path: Path) -> None:
    workspace = empty_workspace(tmp_path / "ws")
    token = create_token(workspace, "ci")
    # shown once, kept only as its digest: the secret is nowhere in the database file
    state_db = workspace / ".nanodistro" / "state.db"
    assert token.encode() not in state_db.read_bytes()
    listed = tokens(workspace)
    assert set(listed) == {"ci"}
    assert listed["ci"]["revoked_at"] is None and listed["ci"]["last_used"] is None
    assert token not in json.dumps(listed)

    again = run_cli(workspace, "token", "create", "ci", str(workspace))
    assert again.returncode != 0
    assert "a token named 'ci' exists" in again.stderr
    assert "Traceback" not in again.stderr

    revoked = run_cli(workspace, "token", "revoke", "ci", str(workspace))
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked" in revoked.stdout
    assert tokens(workspace)["ci"]["revoked_at"] is not None

    missing = run_cli(workspace, "token", "revoke", "nobody", str(workspace))
    assert missing.returncode != 0
    assert "no token named 'nobody'" in missing.stderr


def wait_for_run(client: httpx.Client, run_id: int, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run: dict[str, Any] = client.get(f"/api/runs/{run_id}").json()
        if run["state"] in ("succeeded", "failed") or time.monotonic() > deadline:
            return run
        time.sleep(0.2)


@pytest.mark.slow
def test_serve_answers_runs_a_cycle_and_refuses_a_revoked_token(tmp_path: Path) -> None:
    workspace = empty_workspace(tmp_path / "ws")
    token = create_token(workspace, "operator")
    with serve(workspace, "--no-loop") as base_url, httpx.Client(base_url=base_url) as client:
        schema = client.get("/openapi.json")
        assert schema.status_code == 200
        assert "/api/cycles" in schema.json()["paths"]

        # no token, a made-up one: 401 and nothing queued
        assert client.post("/api/cycles").status_code == 401
        bogus = client.post("/api/cycles", headers={"Authorization": "Bearer ndt_made-up"})
        assert bogus.status_code == 401
        assert client.get("/api/runs").json() == []

        auth = {"Authorization": f"Bearer {token}"}
        posted = client.post("/api/cycles", headers=auth, json={"monitor": True})
        assert posted.status_code == 202, posted.text
        run = posted.json()
        assert run["kind"] == "cycle" and run["requested_by"] == "operator"
        assert run["state"] in ("queued", "running")

        done = wait_for_run(client, run["id"])
        assert done["state"] == "succeeded", done
        assert done["result"]["status"] == "nothing-published"
        log = client.get(done["log_url"]).text
        assert f"run {run['id']} succeeded" in log
        assert log.rstrip().endswith("event: end\ndata:")
        assert tokens(workspace)["operator"]["last_used"] is not None

        # revoked while the server runs: the very next request is refused
        revoked = run_cli(workspace, "token", "revoke", "operator", str(workspace))
        assert revoked.returncode == 0, revoked.stderr
        refused = client.post("/api/cycles", headers=auth)
        assert refused.status_code == 401
        assert refused.json()["detail"] == "unknown or revoked token"
        assert [r["id"] for r in client.get("/api/runs").json()] == [run["id"]]
