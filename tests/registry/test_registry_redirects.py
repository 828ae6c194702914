"""Blob GETs follow redirects (registries hand blobs to a CDN); every hop is held to the
plain-http rule of the first request, so a registry cannot move a pull onto plain http elsewhere."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from nanodistro.errors import FetchError
from nanodistro.registry import RegistryClient

BLOB = b"layer bytes"
DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", location: str | None = None) -> None:
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/v2/":
            self._send(200, b"{}")
        elif self.path == f"/v2/away/blobs/{DIGEST}":
            self._send(307, location="http://example.invalid/x")
        elif self.path == f"/v2/near/blobs/{DIGEST}":
            self._send(307, location="/cdn/blob")
        elif self.path == "/cdn/blob":
            self._send(200, BLOB)
        else:
            self._send(404)


@pytest.fixture
def registry() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_blob_redirect_to_plain_http_elsewhere_is_refused(registry: str, tmp_path: Path) -> None:
    with (
        RegistryClient(registry, plain_http=True, retries=0) as client,
        pytest.raises(FetchError, match=re.escape("refusing redirect to http://example.invalid/x")),
    ):
        client.fetch_blob("away", DIGEST, tmp_path / "blob")
    assert not (tmp_path / "blob").exists()


def test_blob_redirect_within_loopback_still_works(registry: str, tmp_path: Path) -> None:
    with RegistryClient(registry, plain_http=True, retries=0) as client:
        client.fetch_blob("near", DIGEST, tmp_path / "blob")
    assert (tmp_path / "blob").read_bytes() == BLOB


def test_absolute_location_to_plain_http_elsewhere_is_refused(registry: str) -> None:
    with RegistryClient(registry, plain_http=True) as client:
        with pytest.raises(FetchError, match=re.escape("example.invalid")):
            client._url("http://example.invalid/v2/x/blobs/uploads/1")
        assert client._url("https://example.invalid/u") == "https://example.invalid/u"
