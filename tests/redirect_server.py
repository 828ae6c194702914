"""A loopback HTTP server that answers some paths with a redirect and the rest with a body.

Tests of the plain-http rule on redirect hops point a client at ``/away`` (redirected to a
non-loopback plain-http URL, which must be refused before any connection) and ``/near``
(redirected within the same loopback server, which must still work).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OUTSIDE = "http://example.invalid/x"  # never resolved: the client must refuse before connecting


@contextmanager
def serve_redirects(targets: Mapping[str, str], body: bytes) -> Iterator[str]:
    """Serve ``targets`` (path -> Location, answered 302) and ``body`` for every other path;
    yields the base URL ``http://127.0.0.1:PORT``."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            location = targets.get(self.path)
            self.send_response(302 if location else 200)
            if location:
                self.send_header("Location", location)
            payload = b"" if location else body
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
