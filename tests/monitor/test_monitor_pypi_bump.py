"""PyPI sdists for ``bump`` (the hashed path comes from the JSON API), wheel-only releases in
``monitor``, and the two bump messages (missing file upstream, unreachable host) through the CLI.

The loopback server answers PyPI's JSON API (``/pypi/<project>/json`` and
``/pypi/<project>/<version>/json``) with files under hashed ``/packages/xx/yy/<hash>/`` paths,
as files.pythonhosted.org does, so substituting the version into the old URL 404s.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from test_monitor_bump import tarball
from upstream_server import Upstream

from nanodistro.recipe.model import load_recipe
from nanodistro.util.http import describe_http_error


def run_cli(*args: str, base: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NANODISTRO_PYPI_URL": base, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "nanodistro", *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=120,
    )


def _sdist(version: str) -> bytes:
    return tarball(version, {"setup.py": f"# demo {version}\n"})


def _hashed_path(version: str, data: bytes) -> str:
    digest = hashlib.blake2b(data, digest_size=32).hexdigest()
    return f"/packages/{digest[:2]}/{digest[2:4]}/{digest[4:]}/demo-{version}.tar.gz"


def _file(base: str, version: str, kind: str, data: bytes, path: str) -> dict[str, Any]:
    return {
        "packagetype": kind,
        "url": base + path,
        "filename": path.rsplit("/", 1)[1],
        "digests": {"sha256": hashlib.sha256(data).hexdigest()},
        "upload_time_iso_8601": f"2024-0{version[0]}-01T00:00:00Z",
        "yanked": False,
    }


def serve_pypi(upstream: Upstream) -> dict[str, bytes]:
    """demo 1.0 and 2.0 with sdists, 3.0 with only a wheel. Returns the sdists by version."""
    base = upstream.base
    sdists = {v: _sdist(v) for v in ("1.0", "2.0")}
    releases: dict[str, list[dict[str, Any]]] = {}
    for version, data in sdists.items():
        path = _hashed_path(version, data)
        upstream.add(path, data)
        releases[version] = [_file(base, version, "sdist", data, path)]
    wheel = b"PK\x05\x06" + bytes(18)
    releases["3.0"] = [
        _file(base, "3.0", "bdist_wheel", wheel, "/packages/aa/bb/cc/demo-3.0-py3-none-any.whl")
    ]
    upstream.add("/pypi/demo/json", {"info": {"name": "demo"}, "releases": releases})
    for version, files in releases.items():
        upstream.add(f"/pypi/demo/{version}/json", {"info": {"version": version}, "urls": files})
    return sdists


RECIPE = """\
package:
  name: py3-demo
  version: "1.0"
  epoch: 2
  description: demo
  copyright:
    - license: MIT

pipeline:
  - uses: fetch
    with:
      uri: {uri}
      expected-sha256: {sha}

update:
  enabled: true
  pypi:
    identifier: demo
"""


def write_recipe(tmp_path: Path, upstream: Upstream, sdists: dict[str, bytes]) -> Path:
    # Wolfi's py3-* recipes: the 1.0 hashed path with the version substituted into the name.
    path = _hashed_path("1.0", sdists["1.0"]).replace("demo-1.0", "demo-${{package.version}}")
    recipe = tmp_path / "recipes" / "py3-demo.yaml"
    recipe.parent.mkdir()
    recipe.write_text(
        RECIPE.format(uri=upstream.base + path, sha=hashlib.sha256(sdists["1.0"]).hexdigest())
    )
    return recipe


def test_monitor_reports_a_wheel_only_release_and_offers_the_sdist_one(
    tmp_path: Path, upstream: Upstream
) -> None:
    recipe = write_recipe(tmp_path, upstream, serve_pypi(upstream))
    result = run_cli("monitor", str(recipe.parent), "--json", base=upstream.base)
    (entry,) = json.loads(result.stdout)["results"]
    assert entry["status"] == "update"
    assert entry["next"] == "2.0"  # 3.0 has nothing to build from
    assert entry["latest"] == "2.0"
    assert "3.0: no source release" in entry["message"]


def test_bump_takes_the_sdist_url_and_sha256_from_pypi(tmp_path: Path, upstream: Upstream) -> None:
    sdists = serve_pypi(upstream)
    recipe = write_recipe(tmp_path, upstream, sdists)
    result = run_cli(
        "bump", str(recipe), "--source-cache", str(tmp_path / "src"), base=upstream.base
    )
    assert result.returncode == 0, result.stderr
    new_path = _hashed_path("2.0", sdists["2.0"])
    fetch = load_recipe(recipe).pipeline[0].with_
    # the new hashed folder, the file name still templated
    assert fetch["uri"] == upstream.base + new_path.replace("demo-2.0", "demo-${{package.version}}")
    assert fetch["expected-sha256"] == hashlib.sha256(sdists["2.0"]).hexdigest()
    assert load_recipe(recipe).package.version == "2.0"
    # the version substituted into the old hashed path (a 404 on PyPI) was never asked for
    guessed = _hashed_path("1.0", sdists["1.0"]).replace("demo-1.0", "demo-2.0")
    assert guessed not in upstream.paths()
    assert "/pypi/demo/2.0/json" in upstream.paths()


def test_bump_to_a_wheel_only_release_says_no_source_release(
    tmp_path: Path, upstream: Upstream
) -> None:
    recipe = write_recipe(tmp_path, upstream, serve_pypi(upstream))
    before = recipe.read_text()
    result = run_cli("bump", str(recipe), "3.0", base=upstream.base)
    assert result.returncode != 0
    assert "no source release" in result.stderr and "demo 3.0" in result.stderr
    assert "Traceback" not in result.stderr
    assert recipe.read_text() == before


PLAIN = """\
package:
  name: demo
  version: "1.0"
  epoch: 0
  description: demo
  copyright:
    - license: MIT

pipeline:
  - uses: fetch
    with:
      uri: {uri}
      expected-sha256: {sha}
      retry-limit: 1
"""


def test_bump_404_says_the_version_file_does_not_exist_and_shows_the_url(
    tmp_path: Path, upstream: Upstream
) -> None:
    upstream.add("/dl/demo-1.0.tar.gz", _sdist("1.0"))
    recipe = tmp_path / "demo.yaml"
    recipe.write_text(
        PLAIN.format(uri=upstream.base + "/dl/demo-${{package.version}}.tar.gz", sha="0" * 64)
    )
    result = run_cli("bump", str(recipe), "2.0", base=upstream.base)
    assert result.returncode != 0
    tried = f"{upstream.base}/dl/demo-2.0.tar.gz"
    line = result.stderr.strip().splitlines()[-1]
    assert "the file for version 2.0 does not exist upstream" in line
    assert tried in line
    assert "Traceback" not in result.stderr


def test_bump_to_an_unresolvable_host_says_cannot_reach_it(tmp_path: Path) -> None:
    # .invalid never resolves (RFC 6761): the same answer as a machine without a network.
    recipe = tmp_path / "demo.yaml"
    recipe.write_text(
        PLAIN.format(uri="https://demo.invalid/demo-${{package.version}}.tar.gz", sha="0" * 64)
    )
    result = run_cli("bump", str(recipe), "2.0", base="http://127.0.0.1:9")
    assert result.returncode != 0
    assert "cannot reach demo.invalid (no network or name not found)" in result.stderr
    assert "Errno" not in result.stderr and "ConnectError" not in result.stderr


def test_describe_http_error_names_the_host_for_dns_failures() -> None:
    import socket

    import httpx

    request = httpx.Request("GET", "https://files.example.invalid/x.tar.gz")
    error = httpx.ConnectError("[Errno -3] Temporary failure in name resolution", request=request)
    assert describe_http_error(error) == (
        "cannot reach files.example.invalid (no network or name not found)"
    )
    unreachable = OSError(101, "Network is unreachable")
    assert describe_http_error(unreachable, "https://pypi.org/pypi/x/json") == (
        "cannot reach pypi.org (no network or name not found)"
    )
    gai = socket.gaierror(-2, "Name or service not known")
    assert "cannot reach the server" in describe_http_error(gai)
    refused = httpx.ConnectError("[Errno 111] Connection refused", request=request)
    assert describe_http_error(refused) == (
        "cannot connect to files.example.invalid: connection refused"
    )
