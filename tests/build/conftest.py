"""Fixtures for builder tests: an upstream HTTP server on 127.0.0.1, tarballs, signing keys."""

from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # silence test output
        pass


@dataclass
class Upstream:
    """A directory served over HTTP on 127.0.0.1; ``requests`` counts GETs per path."""

    root: Path
    base_url: str
    requests: list[str] = field(default_factory=list)

    def add_tarball(self, name: str, files: dict[str, str | bytes], *, mtime: int = 1_700_000_000,
                    modes: dict[str, int] | None = None, top: str | None = None) -> tuple[str, str]:
        """Write ``name`` (a .tar.gz with ``files`` under ``top/``); return (url, sha256)."""
        data = make_tarball(files, mtime=mtime, modes=modes or {}, top=top)
        (self.root / name).write_bytes(data)
        return f"{self.base_url}/{name}", hashlib.sha256(data).hexdigest()


def make_tarball(files: dict[str, str | bytes], *, mtime: int, modes: dict[str, int],
                 top: str | None) -> bytes:
    buffer = io.BytesIO()
    # fixed gzip mtime so the same inputs give the same bytes
    import gzip

    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz, tarfile.open(
        fileobj=gz, mode="w", format=tarfile.PAX_FORMAT
    ) as tar:
        for path in sorted(files):
            content = files[path]
            raw = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(f"{top}/{path}" if top else path)
            info.size = len(raw)
            info.mtime = mtime
            info.mode = modes.get(path, 0o755 if raw.startswith(b"#!") else 0o644)
            tar.addfile(info, io.BytesIO(raw))
    return buffer.getvalue()


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[Upstream]:
    root = tmp_path / "upstream"
    root.mkdir()
    served = Upstream(root, "")

    class Handler(_Handler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def do_GET(self) -> None:
            served.requests.append(self.path)
            super().do_GET()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    served.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def signing_key_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from nanodistro.trust.keys import generate_key

    private, _ = generate_key("builder-test", tmp_path_factory.mktemp("keys"), bits=2048)
    return private
