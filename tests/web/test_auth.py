"""API tokens: writes need one, reads only when the workspace says so; only a digest is kept."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from webapp import bearer, console, empty_workspace

from nanodistro.errors import ConfigError
from nanodistro.web.auth import authenticate, create_token, list_tokens, revoke_token

WRITES = [
    ("/api/cycles", {}),
    ("/api/recipes/anything/rebuild", None),
    ("/api/promote", None),
    ("/api/rollback", {}),
]


def test_token_is_stored_only_as_its_digest(tmp_path: Path) -> None:
    root = empty_workspace(tmp_path / "ws")
    with console(root) as (_client, context):
        token = create_token(context.write_state, "ci")
        assert token.startswith("ndt_") and len(token) > 40
        assert authenticate(context.write_state, token) == "ci"
        assert authenticate(context.write_state, token + "x") is None
        with pytest.raises(ConfigError, match="exists"):
            create_token(context.write_state, "ci")
    raw = (root / ".nanodistro" / "state.db").read_bytes()
    wal = root / ".nanodistro" / "state.db-wal"
    raw += wal.read_bytes() if wal.exists() else b""
    assert token.encode() not in raw
    rows = sqlite3.connect(root / ".nanodistro" / "state.db").execute(
        "SELECT name, length(sha256) FROM api_tokens"
    )
    assert list(rows) == [("ci", 64)]


@pytest.mark.parametrize(("path", "body"), WRITES)
def test_writes_without_a_token_are_refused_and_queue_nothing(
    tmp_path: Path, path: str, body: dict[str, object] | None
) -> None:
    with console(empty_workspace(tmp_path / "ws")) as (client, context):
        for headers in ({}, {"Authorization": "Bearer ndt_not-a-token"}, {"Authorization": "x"}):
            answer = client.post(path, json=body, headers=headers)
            assert answer.status_code == 401, answer.text
            assert answer.headers["www-authenticate"] == "Bearer"
        assert context.runs.list() == []


def test_a_revoked_token_stops_working(tmp_path: Path) -> None:
    with console(empty_workspace(tmp_path / "ws")) as (client, context):
        headers = bearer(context, "laptop")
        assert client.post("/api/cycles", json={}, headers=headers).status_code == 202
        revoke_token(context.write_state, "laptop")
        answer = client.post("/api/cycles", json={}, headers=headers)
        assert answer.status_code == 401 and "revoked" in answer.json()["detail"]
        assert [t.revoked_at is not None for t in list_tokens(context.write_state)] == [True]
        assert len(context.runs.list()) == 1


def test_reads_are_public_by_default_and_token_only_when_configured(tmp_path: Path) -> None:
    with console(empty_workspace(tmp_path / "open")) as (client, _context):
        assert client.get("/api/runs").status_code == 200
    closed = empty_workspace(tmp_path / "closed", "\n[serve]\npublic-reads = false\n")
    with console(closed) as (client, context):
        assert client.get("/api/runs").status_code == 401
        headers = bearer(context)
        assert client.get("/api/runs", headers=headers).status_code == 200
        # a browser's navigation carries the cookie the console's sign-in sets
        token = headers["Authorization"].removeprefix("Bearer ")
        client.cookies.set("nanodistro_token", token)
        assert client.get("/api/runs").status_code == 200
        # ...which never authorizes a write (another site could make the browser send it)
        assert client.post("/api/cycles", json={}).status_code == 401


def test_console_reads_do_not_wait_for_the_runner_and_cannot_write(tmp_path: Path) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    with console(empty_workspace(tmp_path / "ws")) as (client, context):
        writer = context.write_state.engine.connect()
        writer.begin()  # BEGIN IMMEDIATE: the runner in the middle of a write
        writer.execute(text("INSERT INTO events (type, subject, time, payload) "
                            "VALUES ('published', 'recipe:x', '2026-01-01', '{}')"))  # fmt: skip
        try:
            assert client.get("/api/runs").status_code == 200  # not blocked for 30 s
        finally:
            writer.rollback()
            writer.close()
        with context.state.engine.begin() as reader, pytest.raises(OperationalError):
            reader.execute(text("DELETE FROM runs"))


def test_a_huge_body_is_refused_before_it_is_read_whole(tmp_path: Path) -> None:
    # FastAPI reads a body before the token check: unbounded, anyone could fill the memory
    huge = b'{"monitor": true, "pad": "' + b"x" * (3 << 20) + b'"}'

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for start in range(0, len(huge), 64 << 10):
            yield huge[start : start + (64 << 10)]

    with console(empty_workspace(tmp_path / "ws")) as (client, context):
        token = {"Content-Type": "application/json", **bearer(context)}
        for headers in ({"Content-Type": "application/json"}, token):
            for body in (huge, chunks()):
                answer = client.post("/api/cycles", content=body, headers=headers)
                assert answer.status_code == 413, answer.text
        for body in (huge, chunks()):
            answer = client.post("/hooks/generic", content=body, headers=token)
            assert answer.status_code == 413, answer.text
        assert context.runs.list() == []
        small = client.post("/api/cycles", json={"monitor": False}, headers=token)
        assert small.status_code == 202


def test_pages_send_a_browser_without_a_token_to_sign_in(tmp_path: Path) -> None:
    closed = empty_workspace(tmp_path / "closed", "\n[serve]\npublic-reads = false\n")
    with console(closed) as (client, context):
        answer = client.get("/events?type=promoted", follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/login?next=/events%3Ftype%3Dpromoted"
        assert client.get("/login").status_code == 200  # the sign-in page itself is open
        assert client.get("/api/events").status_code == 401  # API clients get the 401
        token = bearer(context)["Authorization"].removeprefix("Bearer ")
        client.cookies.set("nanodistro_token", token)
        assert client.get("/events", follow_redirects=False).status_code == 200
