"""Retries: a fault-injecting proxy in front of a real docker-registry answers some requests
with 503 or drops the connection; pushes and pulls must still succeed and give the same digest."""

from __future__ import annotations

import http.server
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from registry_testdata import make_layout

from nanodistro.errors import RegistryError
from nanodistro.registry import RegistryClient, pull, push_layout
from registry_server import RunningRegistry, find_tool

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class FlakyProxy:
    """Forwards to ``upstream``; request number n (1-based) fails when n % every == 0:
    alternately a 503 with the spec's error JSON and a dropped connection. With
    ``fake_digest`` every ``Docker-Content-Digest`` header is replaced by it."""

    def __init__(
        self,
        upstream: str,
        every: int,
        fake_digest: str | None = None,
        modes: tuple[str, ...] = ("503", "drop"),
    ) -> None:
        self.upstream = upstream
        self.modes = modes
        self.every = every
        self.fake_digest = fake_digest
        self.count = 0
        self.failures: list[str] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with outer._lock:
                    outer.count += 1
                    fail = outer.count % outer.every == 0
                    kind = outer.modes[len(outer.failures) % len(outer.modes)]
                    if fail:
                        outer.failures.append(kind)
                if fail and kind == "drop":
                    self.close_connection = True
                    return
                if fail:
                    payload = b'{"errors":[{"code":"UNAVAILABLE","message":"try again"}]}'
                    self.send_response(503)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                response = httpx.request(
                    self.command,
                    f"http://{outer.upstream}{self.path}",
                    headers=headers,
                    content=body,
                    timeout=30,
                )
                self.send_response(response.status_code)
                for key, value in response.headers.items():
                    if key.lower() in _HOP_BY_HOP:
                        continue
                    if key.lower() == "location":
                        value = value.replace(outer.upstream, outer.host)
                    if key.lower() == "docker-content-digest" and outer.fake_digest:
                        value = outer.fake_digest
                    self.send_header(key, value)
                data = b"" if self.command == "HEAD" else response.content
                length = response.headers.get("Content-Length", "0") if not data else len(data)
                self.send_header("Content-Length", str(length))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def flaky(docker_registry: RunningRegistry) -> Iterator[FlakyProxy]:
    proxy = FlakyProxy(docker_registry.host, every=4)
    yield proxy
    proxy.close()


def test_push_and_pull_survive_503_and_dropped_connections(
    flaky: FlakyProxy, docker_registry: RunningRegistry, tmp_path: Path
) -> None:
    built = make_layout(tmp_path / "layout")
    digest = push_layout(built.root, f"{flaky.host}/flaky/img:v1", chunk_threshold=100)
    assert digest == built.top_digest
    assert {"503", "drop"} <= set(flaky.failures)
    crane = subprocess.run(
        [find_tool("crane"), "digest", "--insecure", docker_registry.ref("flaky/img:v1")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert crane.stdout.strip() == digest
    before = len(flaky.failures)
    assert pull(f"{flaky.host}/flaky/img:v1", tmp_path / "pulled") == digest
    assert len(flaky.failures) > before


def test_persistent_5xx_gives_up_with_the_registry_error(
    docker_registry: RunningRegistry,
) -> None:
    proxy = FlakyProxy(docker_registry.host, every=1, modes=("503",))
    try:
        with (
            RegistryClient(proxy.host, retries=2, backoff=0.01) as client,
            pytest.raises(RegistryError, match=r"UNAVAILABLE: try again.*3 attempts"),
        ):
            client.get_manifest("any/repo", "v1")
    finally:
        proxy.close()


def test_registry_reporting_another_digest_is_refused(
    docker_registry: RunningRegistry, tmp_path: Path
) -> None:
    built = make_layout(tmp_path / "layout")
    push_layout(built.root, docker_registry.ref("honest/img:v1"))
    fake = "sha256:" + "0" * 64
    proxy = FlakyProxy(docker_registry.host, every=10**9, fake_digest=fake)
    try:
        with pytest.raises(RegistryError, match=f"expected {fake}"):
            pull(f"{proxy.host}/honest/img:v1", tmp_path / "pulled")
        index = (built.root / "blobs/sha256" / built.top_digest.split(":")[1]).read_bytes()
        with (
            RegistryClient(proxy.host) as client,
            pytest.raises(RegistryError, match=f"registry reports digest {fake}"),
        ):
            client.put_manifest(
                "honest/img", "v2", index, "application/vnd.oci.image.index.v1+json"
            )
    finally:
        proxy.close()
