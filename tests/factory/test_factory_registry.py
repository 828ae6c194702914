"""``[registry] url`` in nanodistro.toml: every promotion pushes the promoted images to a real
registry (Debian's docker-registry on 127.0.0.1) under ``staging``/``stable`` and their ``build-<N>`` tag;
a later promotion moves ``stable`` and the previous stable digest stays pullable by digest."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mini_catalog import release_libgreet, serve_upstream, watch_libgreet, write_workspace
from nanodistro.cli import app
from needs_tools import require_tools
from registry_server import RunningRegistry, docker_registry, find_tool  # noqa: F401

pytestmark = pytest.mark.slow

INSECURE = "--tls-verify=false"


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[tuple[str, dict[str, str], Path]]:
    require_tools("bwrap", "gcc", "umoci", "runc", "skopeo")
    with serve_upstream(tmp_path) as (url, digests):
        yield url, digests, tmp_path / "upstream"


def run_once(root: Path) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["factory", "run", str(root), "--once", "--json", "--quiet"])
    assert result.stdout.strip(), result.output
    report: dict[str, Any] = json.loads(result.stdout)
    assert report["status"] == "promoted", json.dumps(report, indent=1)[:4000]
    return report


def remote_digest(reference: str) -> str:
    """sha256 of the manifest bytes the registry serves for ``reference``."""
    raw = subprocess.run(
        [find_tool("skopeo"), "inspect", "--raw", INSECURE, f"docker://{reference}"],
        capture_output=True,
        check=True,
    )
    return "sha256:" + hashlib.sha256(raw.stdout).hexdigest()


def test_promotion_pushes_stable_and_build_tags_and_old_digests_stay_pullable(
    upstream: tuple[str, dict[str, str], Path],
    docker_registry: RunningRegistry,  # noqa: F811
    tmp_path: Path,
) -> None:
    from nanodistro.image.tags import list_tags, tag_digest

    url, digests, served = upstream
    root = write_workspace(tmp_path / "ws", url, digests)
    prefix = docker_registry.ref("mini")
    with (root / "nanodistro.toml").open("a") as toml:
        toml.write(f'\n[registry]\nurl = "{prefix}"\n')
    watch_libgreet(root, url)

    run_once(root)
    layouts = root / "out" / "images"
    first = {name: tag_digest(layouts / name, "stable") for name in ("hello", "static")}
    for name, digest in first.items():
        assert digest
        assert remote_digest(f"{prefix}/{name}:stable") == digest, name
        builds = [t for t, d in list_tags(layouts / name).items() if t.startswith("build-")]
        assert builds == ["build-1"]
        assert remote_digest(f"{prefix}/{name}:build-1") == digest, name
        assert remote_digest(f"{prefix}/{name}:staging") == digest, name

    # upstream releases libgreet 1.3.0: hello (static link) and its image are rebuilt, promoted
    release_libgreet(served, "1.3.0")
    report = run_once(root)
    assert set(report["changed_images"]) == {"hello"}
    second = tag_digest(layouts / "hello", "stable")
    assert second and second != first["hello"]
    assert remote_digest(f"{prefix}/hello:stable") == second
    assert remote_digest(f"{prefix}/hello:build-2") == second
    assert remote_digest(f"{prefix}/hello:staging") == second
    assert remote_digest(f"{prefix}/hello:build-1") == first["hello"]
    assert remote_digest(f"{prefix}/static:stable") == first["static"]
    # the previous stable digest is still pullable by digest (the whole image, blobs included)
    pulled = tmp_path / "pulled"
    subprocess.run(
        [find_tool("skopeo"), "copy", "--all", "--src-tls-verify=false",
         f"docker://{prefix}/hello@{first['hello']}", f"oci:{pulled}:old"],
        capture_output=True,
        check=True,
    )  # fmt: skip
    index = json.loads((pulled / "index.json").read_bytes())
    assert index["manifests"][0]["digest"] == first["hello"]
