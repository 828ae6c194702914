"""``nanodistro vuln update`` against a loopback server answering in OSV's bucket layout."""

from __future__ import annotations

import io
import json
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cli_runner import run_cli
from nanodistro.errors import FetchError, FormatError
from nanodistro.vuln.osvdb import load_osv
from nanodistro.vuln.update import update_ecosystems


def _zip(records: dict[str, dict[str, object]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as out:
        for record_id, record in records.items():
            out.writestr(f"{record_id}.json", json.dumps(record))
    return buffer.getvalue()


def _record(record_id: str, ecosystem: str, name: str) -> dict[str, object]:
    return {
        "id": record_id,
        "affected": [
            {
                "package": {"ecosystem": ecosystem, "name": name},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
            }
        ],
    }


@contextmanager
def bucket(routes: dict[str, tuple[int, bytes, dict[str, str]]]) -> Iterator[tuple[str, list[str]]]:
    """Serve path -> (status, body, headers); yields the base URL and the paths requested."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            asked.append(self.path)
            status, body, headers = routes.get(self.path, (404, b"no such object", {}))
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", asked
    finally:
        server.shutdown()
        server.server_close()


def test_update_downloads_each_ecosystem_and_replaces_it_atomically(tmp_path: Path) -> None:
    pypi = _zip({"PYSEC-1": _record("PYSEC-1", "PyPI", "requests")})
    git = _zip(
        {
            "OSV-GIT-1": {
                "id": "OSV-GIT-1",
                "affected": [
                    {
                        "ranges": [
                            {
                                "type": "GIT",
                                "repo": "https://github.com/x/y",
                                "events": [{"introduced": "0"}],
                            }
                        ]
                    }
                ],
            }
        }
    )
    routes = {"/PyPI/all.zip": (200, pypi, {}), "/GIT/all.zip": (200, git, {})}
    dest = tmp_path / "osv"
    with bucket(routes) as (base, asked):
        done = update_ecosystems(["PyPI", "GIT"], dest, base=base + "/")
    assert asked == ["/PyPI/all.zip", "/GIT/all.zip"]
    assert [(d.ecosystem, d.records) for d in done] == [("PyPI", 1), ("GIT", 1)]
    assert (dest / "PyPI" / "all.zip").read_bytes() == pypi
    assert {r.id for r in load_osv(dest).records} == {"PYSEC-1", "OSV-GIT-1"}
    # A broken answer (not a zip) and a server error leave the previous copy in place.
    broken = {"/PyPI/all.zip": (200, b"<html>gateway</html>", {})}
    with bucket(broken) as (base, _), pytest.raises(FormatError, match="not a zip of OSV"):
        update_ecosystems(["PyPI"], dest, base=base)
    with bucket({"/PyPI/all.zip": (503, b"busy", {})}) as (base, asked):
        with pytest.raises(FetchError, match="HTTP 503"):
            update_ecosystems(["PyPI"], dest, base=base, attempts=2, backoff=0.01)
        assert len(asked) == 2  # retried once
    assert (dest / "PyPI" / "all.zip").read_bytes() == pypi
    assert sorted(p.name for p in (dest / "PyPI").iterdir()) == ["all.zip"]  # no temp left


def test_update_refuses_a_redirect_to_plain_http_elsewhere_and_oversize(tmp_path: Path) -> None:
    routes = {"/PyPI/all.zip": (302, b"", {"Location": "http://example.invalid/PyPI/all.zip"})}
    refused = r"refusing redirect to http://example\.invalid"
    with bucket(routes) as (base, _), pytest.raises(FetchError, match=refused):
        update_ecosystems(["PyPI"], tmp_path / "osv", base=base)
    big = _zip({f"R-{n}": _record(f"R-{n}", "npm", "x") for n in range(50)})
    oversize = "larger than the limit of 100 bytes"
    with (
        bucket({"/npm/all.zip": (200, big, {})}) as (base, _),
        pytest.raises(FetchError, match=oversize),
    ):
        update_ecosystems(["npm"], tmp_path / "osv", base=base, limit=100)
    assert not (tmp_path / "osv" / "npm" / "all.zip").exists()
    with pytest.raises(FetchError, match="refusing plain http"):
        update_ecosystems(["npm"], tmp_path / "osv", base="http://example.invalid")


def test_cli_vuln_update_takes_the_catalog_ecosystems(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    (ws / "recipes").mkdir(parents=True)
    (ws / "nanodistro.toml").write_text('[vulnerabilities]\nosv = "feeds/osv"\n')
    (ws / "recipes" / "py3-foo.yaml").write_text(
        "package:\n  name: py3-foo\n  version: 1.0.0\n  epoch: 0\n  description: f\n"
        "  copyright:\n    - license: MIT\n"
        "pipeline:\n  - uses: py/pip-build-install\n"
    )
    routes = {
        "/GIT/all.zip": (200, _zip({"G-1": _record("G-1", "PyPI", "a")}), {}),
        "/PyPI/all.zip": (200, _zip({"P-1": _record("P-1", "PyPI", "foo")}), {}),
    }
    with bucket(routes) as (base, asked):
        done = run_cli(ws, "vuln", "update", "--url", base)
    assert done.returncode == 0, done.stderr
    assert sorted(asked) == ["/GIT/all.zip", "/PyPI/all.zip"]
    assert (ws / "feeds/osv/PyPI/all.zip").is_file()
    assert "PyPI: 1 records" in done.stdout
    with bucket(routes) as (base, asked):
        done = run_cli(ws, "vuln", "update", "--url", base, "-e", "PyPI")
    assert done.returncode == 0 and asked == ["/PyPI/all.zip"]
