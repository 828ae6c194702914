"""Helpers for builder tests: an upstream HTTP server on 127.0.0.1 and generated tarballs."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import tarfile
from dataclasses import dataclass, field
from pathlib import Path


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # silence test output
        pass


@dataclass
class Upstream:
    """A directory served over HTTP on 127.0.0.1; ``requests`` counts GETs per path."""

    root: Path
    base_url: str
    requests: list[str] = field(default_factory=list)

    def add_tarball(
        self,
        name: str,
        files: dict[str, str | bytes],
        *,
        mtime: int = 1_700_000_000,
        modes: dict[str, int] | None = None,
        top: str | None = None,
    ) -> tuple[str, str]:
        """Write ``name`` (a .tar.gz with ``files`` under ``top/``); return (url, sha256)."""
        data = make_tarball(files, mtime=mtime, modes=modes or {}, top=top)
        (self.root / name).write_bytes(data)
        return f"{self.base_url}/{name}", hashlib.sha256(data).hexdigest()


def make_tarball(
    files: dict[str, str | bytes], *, mtime: int, modes: dict[str, int], top: str | None
) -> bytes:
    buffer = io.BytesIO()
    # fixed gzip mtime so the same inputs give the same bytes
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path in sorted(files):
            content = files[path]
            raw = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(f"{top}/{path}" if top else path)
            info.size = len(raw)
            info.mtime = mtime
            info.mode = modes.get(path, 0o755 if raw.startswith(b"#!") else 0o644)
            tar.addfile(info, io.BytesIO(raw))
    return buffer.getvalue()
