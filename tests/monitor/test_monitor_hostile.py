"""The monitor against hostile upstreams on 127.0.0.1: a server trickling one byte at a time, one
that accepts connections and never answers, a JSON reply nested 100000 deep and redirects onto
plain http elsewhere. Each costs its own recipe an error naming the URL; the others are checked."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from test_monitor_providers import PYPI_DOC
from upstream_server import Upstream

from nanodistro.monitor.check import check_targets_async
from nanodistro.monitor.models import CheckResult
from nanodistro.monitor.providers.base import Endpoints
from nanodistro.monitor.recipes import target_from_document

DEPTH = 100_000
PAGE = b'<a href="demo-1.0.tar.gz">demo-1.0</a> <a href="demo-1.2.tar.gz">demo-1.2</a>'


@dataclass
class Hostile:
    base: str  # the misbehaving HTTP server
    silent: str  # accepts connections, never answers
    stop: threading.Event


def _handler(stop: threading.Event) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _answer(self, status: int, body: bytes, **headers: str) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/trickle":
                # Headers at once, then one byte every half second: no single read is slow.
                self.send_response(200)
                self.send_header("Content-Length", str(10**6))
                self.end_headers()
                while not stop.wait(0.5):
                    try:
                        self.wfile.write(b"x")
                        self.wfile.flush()
                    except OSError:
                        return  # the client gave up
            elif self.path == "/pypi/deep/json":
                self._answer(200, b"[" * DEPTH + b"]" * DEPTH)
            elif self.path == "/away":
                self._answer(302, b"", Location="http://example.invalid/x")
            elif self.path == "/near":
                self._answer(302, b"", Location="/page")
            elif self.path == "/page":
                self._answer(200, PAGE)
            else:
                self._answer(404, b"")

    return Handler


@pytest.fixture
def hostile() -> Iterator[Hostile]:
    stop = threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(stop))
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []

    def hold() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            held.append(connection)  # read nothing, answer nothing

    threading.Thread(target=hold, daemon=True).start()
    try:
        yield Hostile(
            f"http://127.0.0.1:{server.server_address[1]}",
            f"http://127.0.0.1:{listener.getsockname()[1]}",
            stop,
        )
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        listener.close()
        for connection in held:
            connection.close()


def http_regex(name: str, url: str) -> dict[str, Any]:
    return {
        "package": {"name": name, "version": "1.0", "epoch": 0},
        "update": {
            "enabled": True,
            "http-regex": {"url": url, "pattern": r"demo-([0-9.]+)\.tar\.gz"},
        },
    }


def pypi(name: str, identifier: str) -> dict[str, Any]:
    return {
        "package": {"name": name, "version": "1.0.0", "epoch": 0},
        "update": {"enabled": True, "pypi": {"identifier": identifier}},
    }


def run_checks(
    documents: list[dict[str, Any]], pypi_base: str, **options: Any
) -> dict[str, CheckResult]:
    """Check in a worker thread; the join timeout is only a guard against hanging forever."""
    targets = [target_from_document(d, None) for d in documents]
    endpoints = Endpoints(pypi=pypi_base)
    found: list[list[CheckResult]] = []

    def work() -> None:
        found.append(
            asyncio.run(check_targets_async(targets, endpoints=endpoints, backoff=0.01, **options))
        )

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(120)
    assert not worker.is_alive(), "the monitor did not return"
    return {result.name: result for result in found[0]}


def test_trickling_server_hits_the_request_deadline(hostile: Hostile, upstream: Upstream) -> None:
    upstream.add("/pypi/demo/json", PYPI_DOC)
    results = run_checks(
        [http_regex("trickled", f"{hostile.base}/trickle"), pypi("healthy", "demo")],
        upstream.base,
        request_timeout=1.0,
        recipe_timeout=60.0,
    )
    trickled = results["trickled"]
    assert trickled.status == "error"
    assert trickled.message == (
        f"{hostile.base}/trickle: no complete answer within the request deadline of 1 s "
        "(--request-timeout)"
    )
    assert results["healthy"].status == "update" and results["healthy"].latest == "2.1.0"


def test_silent_and_trickling_servers_hit_the_recipe_deadline(
    hostile: Hostile, upstream: Upstream
) -> None:
    upstream.add("/pypi/demo/json", PYPI_DOC)
    results = run_checks(
        [
            http_regex("silent", f"{hostile.silent}/releases"),
            http_regex("trickled", f"{hostile.base}/trickle"),
            pypi("healthy", "demo"),
        ],
        upstream.base,
        request_timeout=60.0,
        recipe_timeout=1.5,
    )
    for name, url in (
        ("silent", f"{hostile.silent}/releases"),
        ("trickled", f"{hostile.base}/trickle"),
    ):
        assert results[name].status == "error"
        assert results[name].message == (
            f"{url}: no answer from 127.0.0.1 within the recipe deadline of 1.5 s (--deadline)"
        )
    assert results["healthy"].status == "update"


def test_deeply_nested_json_is_an_error_naming_the_url(
    hostile: Hostile, upstream: Upstream
) -> None:
    upstream.add("/page", PAGE)
    results = run_checks(
        [pypi("deep", "deep"), http_regex("healthy", f"{upstream.base}/page")], hostile.base
    )
    assert results["deep"].status == "error"
    assert results["deep"].message == (
        f"{hostile.base}/pypi/deep/json: JSON document nested too deeply "
        "(more levels than the parser allows)"
    )
    assert results["healthy"].latest == "1.2"


def test_redirect_onto_plain_http_elsewhere_is_refused(
    hostile: Hostile, upstream: Upstream
) -> None:
    results = run_checks(
        [
            http_regex("away", f"{hostile.base}/away"),
            http_regex("near", f"{hostile.base}/near"),
            http_regex("plain", "http://example.invalid/releases"),
        ],
        upstream.base,
    )
    assert results["away"].status == "error"
    assert results["away"].message == (
        f"{hostile.base}/away: refusing redirect to http://example.invalid/x: plain http to a "
        "non-loopback host (use https, or --insecure)"
    )
    assert results["near"].latest == "1.2"  # a redirect within loopback is fine
    assert "refusing plain http to a non-loopback host" in (results["plain"].message or "")


def test_cli_deadline_options(hostile: Hostile, upstream: Upstream, tmp_path: Path) -> None:
    upstream.add("/pypi/demo/json", PYPI_DOC)
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "trickled.yaml").write_text(
        json.dumps(http_regex("trickled", f"{hostile.base}/trickle"))
    )
    (recipes / "healthy.yaml").write_text(json.dumps(pypi("healthy", "demo")))
    result = subprocess.run(
        [
            *(sys.executable, "-m", "nanodistro", "monitor", str(recipes), "--json"),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--request-timeout",
            "1",
            "--recipe-timeout",
            "5",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, "NANODISTRO_PYPI_URL": upstream.base},
    )
    assert result.returncode == 10, result.stderr
    by_name = {r["name"]: r for r in json.loads(result.stdout)["results"]}
    assert re.search(r"request deadline of 1 s", by_name["trickled"]["message"])
    assert by_name["healthy"]["status"] == "update"


def test_git_upstream_that_never_answers_is_stopped_at_the_recipe_deadline(
    hostile: Hostile, upstream: Upstream
) -> None:
    upstream.add("/pypi/demo/json", PYPI_DOC)
    repository = f"{hostile.silent}/repo.git"
    document = {
        "package": {"name": "silent-git", "version": "1.0", "epoch": 0},
        "update": {"enabled": True, "git": {}},
        "pipeline": [{"uses": "git-checkout", "with": {"repository": repository, "tag": "x"}}],
    }
    results = run_checks([document, pypi("healthy", "demo")], upstream.base, recipe_timeout=1.5)
    assert results["silent-git"].message == (
        f"{repository}: no answer from 127.0.0.1 within the recipe deadline of 1.5 s (--deadline)"
    )
    assert results["healthy"].status == "update"
    # git itself was stopped, not left waiting on the server behind the monitor.
    running = subprocess.run(["pgrep", "-f", f"ls-remote --tags {repository}"], check=False)
    assert running.returncode == 1
