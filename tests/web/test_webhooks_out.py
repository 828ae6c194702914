"""Webhooks out: the configured URL (a real HTTP server on 127.0.0.1 here) gets the wanted
events, signed, once each, across restarts; failures are retried, then given up."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.server
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from webapp import empty_workspace

from nanodistro.factory import events
from nanodistro.factory.state.db import State, open_state, workspace_state_url
from nanodistro.factory.workspace import load_workspace
from nanodistro.web.app import create_app
from nanodistro.web.context import WebContext
from nanodistro.web.hooks import services_for
from nanodistro.web.runs import RunStore
from nanodistro.web.settings import DEFAULT_OUT_EVENTS, serve_settings
from nanodistro.web.webhooks_out import CURSOR_FILE, WebhookDispatcher

SECRET = b"outgoing-secret-0123456789abcdef"


class Receiver:
    """What the server got: (headers, raw body) per request; ``answers`` are the status codes
    to give, in order (then 200)."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.answers: list[int] = []
        self.lock = threading.Lock()
        self.url = ""

    def wait_for(self, count: int, timeout: float = 10) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.requests) >= count:
                    return list(self.requests)
            time.sleep(0.02)
        raise AssertionError(f"{len(self.requests)} requests, expected {count}")

    def bodies(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(body) for _headers, body in self.requests]


@contextlib.contextmanager
def receiver() -> Iterator[Receiver]:
    got = Receiver()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with got.lock:
                got.requests.append((dict(self.headers.items()), body))
                status = got.answers.pop(0) if got.answers else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    got.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield got
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def workspace_state(root: Path) -> Iterator[State]:
    state = open_state(workspace_state_url(load_workspace(root)))
    try:
        yield state
    finally:
        state.close()


def dispatcher(state: State, root: Path, url: str, **kw: Any) -> WebhookDispatcher:
    options: dict[str, Any] = {
        "workspace": "web",
        "events": DEFAULT_OUT_EVENTS,
        "secret": SECRET,
        "poll": 0.05,
        "backoff": 0.05,
        **kw,
    }
    return WebhookDispatcher(state, root, url, **options)


@contextlib.contextmanager
def running(service: WebhookDispatcher) -> Iterator[WebhookDispatcher]:
    service.start()
    try:
        yield service
    finally:
        service.stop()


def wait_until(check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


def record_some(state: State) -> list[events.Event]:
    return [
        events.record(state, events.BUILD_SUCCEEDED, "recipe:zlib", {"version": "1.3-r0"}),
        events.record(
            state, events.PROMOTED, "channel:stable", {"from": 3, "to": 4, "packages": ["a"]}
        ),
        events.record(state, events.GATE_BLOCKED, "channel:stable", {"reasons": ["smoke"]}),
        events.record(state, events.PUBLISHED, "package:zlib", {"version": "1.3-r0"}),
        events.record(
            state, events.VULNERABILITY_DETECTED, "vulnerability:CVE-2024-0001", {"recipe": "zlib"}
        ),
    ]


def test_wanted_events_are_posted_signed_and_in_order(tmp_path: Path) -> None:
    root = empty_workspace(tmp_path / "ws")
    with workspace_state(root) as state, receiver() as got:
        old = events.record(state, events.PROMOTED, "channel:stable", {"to": 1})
        service = dispatcher(state, root, got.url)
        with running(service):
            recorded = record_some(state)
            got.wait_for(3)
            wait_until(lambda: service.cursor == recorded[-1].id)
        requests = got.wait_for(3)
        assert len(requests) == 3  # build-succeeded and published are not wanted
        bodies = got.bodies()
        # the first start begins at the newest event: the history (old) is not sent
        assert old.id not in [b["id"] for b in bodies]
        wanted = [recorded[1], recorded[2], recorded[4]]
        assert bodies == [{**e.to_json(), "workspace": "web"} for e in wanted]
        for (headers, body), event in zip(requests, wanted, strict=True):
            assert headers["X-Nanodistro-Event"] == event.type
            assert headers["Content-Type"] == "application/json"
            assert headers["X-Nanodistro-Delivery"] == f"web:{event.id}"
            expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
            assert headers["X-Nanodistro-Signature-256"] == expected
        cursor = json.loads((root / CURSOR_FILE).read_text())
        digest = hashlib.sha256(got.url.encode()).hexdigest()  # never the URL (it may hold a token)
        assert cursor == {"url_sha256": digest, "last_event_id": recorded[-1].id}


def test_a_restart_neither_resends_nor_skips(tmp_path: Path) -> None:
    root = empty_workspace(tmp_path / "ws")
    with workspace_state(root) as state, receiver() as got:
        with running(dispatcher(state, root, got.url)):
            first = events.record(state, events.PROMOTED, "image:python", {"digest": "sha256:1"})
            got.wait_for(1)
        # recorded while the serving process is down
        down = [
            events.record(state, events.GATE_BLOCKED, "channel:stable", {"reasons": ["x"]}),
            events.record(state, events.VULNERABILITY_FIXED, "vulnerability:CVE-1", {}),
        ]
        with running(dispatcher(state, root, got.url)) as again:
            got.wait_for(3)
            wait_until(lambda: again.cursor == down[-1].id)
            time.sleep(0.2)  # a resend would show up by now
        assert [b["id"] for b in got.bodies()] == [first.id, down[0].id, down[1].id]


def test_unsigned_without_a_secret_and_only_the_configured_types(tmp_path: Path) -> None:
    root = empty_workspace(tmp_path / "ws")
    with workspace_state(root) as state, receiver() as got:
        service = dispatcher(state, root, got.url, secret=None, events=[events.GATE_BLOCKED])
        with running(service):
            recorded = record_some(state)
            got.wait_for(1)
            wait_until(lambda: service.cursor == recorded[-1].id)
        ((headers, _body),) = got.wait_for(1)
        assert "X-Nanodistro-Signature-256" not in headers
        assert [b["type"] for b in got.bodies()] == [events.GATE_BLOCKED]


def test_failures_are_retried_then_given_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = empty_workspace(tmp_path / "ws")
    caplog.set_level(logging.INFO, logger="nanodistro.web.webhooks_out")
    with workspace_state(root) as state, receiver() as got:
        # two 503s, then accepted: three requests, delivered once
        got.answers = [503, 503]
        service = dispatcher(state, root, got.url, attempts=3)
        with running(service):
            event = events.record(state, events.PROMOTED, "channel:stable", {"to": 2})
            got.wait_for(3)
            wait_until(lambda: service.cursor == event.id)
            assert service.delivered == 1 and service.given_up == 0
            # always 500: given up after 3 attempts, and the next event still goes out
            got.answers = [500, 500, 500]
            lost = events.record(state, events.GATE_BLOCKED, "channel:stable", {})
            after = events.record(state, events.PROMOTED, "channel:stable", {"to": 3})
            got.wait_for(7)
            wait_until(lambda: service.cursor == after.id)
        ids = [b["id"] for b in got.bodies()]
        assert ids == [event.id] * 3 + [lost.id] * 3 + [after.id]
        assert service.given_up == 1 and service.delivered == 2
        assert f"gave up on event {lost.id}" in caplog.text and "HTTP 500" in caplog.text
        # a 4xx other than 408/429 is not retried: the receiver refused it
        got.answers = [400]
        with running(dispatcher(state, root, got.url, attempts=3)) as again:
            refused = events.record(state, events.PROMOTED, "channel:stable", {"to": 4})
            wait_until(lambda: again.cursor == refused.id)
        assert [b["id"] for b in got.bodies()].count(refused.id) == 1


def test_an_unreachable_receiver_is_given_up_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = empty_workspace(tmp_path / "ws")
    with receiver() as got:  # a port that was listening and no longer is
        url = got.url
    with workspace_state(root) as state:
        service = dispatcher(state, root, url, attempts=2, timeout=2)
        with running(service):
            event = events.record(state, events.PROMOTED, "channel:stable", {"to": 2})
            wait_until(lambda: service.cursor == event.id)
        assert service.given_up == 1
        assert "cannot connect" in caplog.text and "ConnectError" not in caplog.text


def test_credentials_in_the_url_stay_out_of_logs_status_and_cursor(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = empty_workspace(tmp_path / "ws")
    with receiver() as got:  # closed again: every delivery fails and is logged
        port = got.url.split(":")[2].split("/")[0]
    url = f"http://hook:pa55word@127.0.0.1:{port}/hook?token=t0ken-123"
    with workspace_state(root) as state:
        service = dispatcher(state, root, url, attempts=2, timeout=2)
        with running(service):
            event = events.record(state, events.PROMOTED, "channel:stable", {"to": 2})
            wait_until(lambda: service.cursor == event.id)
        shown = json.dumps(service.status()) + caplog.text
        shown += (root / ".nanodistro" / "webhooks-out.json").read_text()
        assert f"http://127.0.0.1:{port}/hook" in shown
        assert "pa55word" not in shown and "t0ken-123" not in shown


def test_stopping_mid_retry_sends_it_again_on_the_next_start(tmp_path: Path) -> None:
    root = empty_workspace(tmp_path / "ws")
    with workspace_state(root) as state, receiver() as got:
        got.answers = [503]
        service = dispatcher(state, root, got.url, backoff=30)
        with running(service):
            event = events.record(state, events.PROMOTED, "channel:stable", {"to": 2})
            got.wait_for(1)
        assert service.cursor == event.id - 1  # stopped during the 30 s backoff
        with running(dispatcher(state, root, got.url)) as again:
            wait_until(lambda: again.cursor == event.id)
        assert [b["id"] for b in got.bodies()] == [event.id, event.id]


def test_the_serving_app_starts_the_dispatcher_from_the_settings(tmp_path: Path) -> None:
    root = empty_workspace(tmp_path / "ws")
    (root / "out.secret").write_bytes(SECRET)
    with receiver() as got:
        (root / "nanodistro.toml").write_text(
            (root / "nanodistro.toml").read_text()
            + f'\n[webhooks]\nurl = "{got.url}"\nevents = ["promoted"]\n'
            'secret-file = "out.secret"\n'
        )
        workspace = load_workspace(root)
        state = open_state(workspace_state_url(workspace))
        try:
            context = WebContext(
                workspace, state, serve_settings(workspace), RunStore(state, tmp_path / "runs")
            )
            context.services.extend(services_for(context))
            (service,) = context.services
            assert isinstance(service, WebhookDispatcher)
            service.poll = 0.05
            with TestClient(create_app(context)) as client:
                assert client.get("/healthz").json()["services"] == {"webhooks-out": True}
                events.record(state, events.GATE_BLOCKED, "channel:stable", {})
                event = events.record(state, events.PROMOTED, "channel:stable", {"to": 9})
                ((headers, body),) = got.wait_for(1)
            assert not service.alive  # stopped with the app
            assert json.loads(body)["id"] == event.id
            assert headers["X-Nanodistro-Signature-256"] == (
                "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
            )
        finally:
            state.close()
        # no url: no service
        plain = load_workspace(empty_workspace(tmp_path / "plain"))
        state = open_state(workspace_state_url(plain))
        try:
            bare = WebContext(plain, state, serve_settings(plain), RunStore(state, tmp_path / "r"))
            assert services_for(bare) == []
        finally:
            state.close()
