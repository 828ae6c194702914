"""The factory signs and attests every image it pushes: the real cosign verifies the pushed
``stable`` digest with the workspace's ``keys/cosign.pub`` and finds its SPDX SBOM attestation;
pushing the same digest again adds nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cosign_testlib import cosign_verify, cosign_verify_attestation
from mini_catalog import serve_upstream, watch_libgreet, write_workspace
from nanodistro.cli import app
from nanodistro.factory.promote import push_to_registry
from nanodistro.factory.workspace import load_workspace
from nanodistro.image.signatures import registry_target, verify_attestations
from nanodistro.image.tags import tag_digest
from nanodistro.registry import RegistryClient
from needs_tools import require_tools
from registry_server import RunningRegistry, start_docker_registry

pytestmark = pytest.mark.slow


@pytest.fixture
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    with start_docker_registry(tmp_path_factory.mktemp("registry")) as running:
        yield running


def test_pushed_images_are_signed_and_sbom_attested(
    tmp_path: Path, registry: RunningRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_tools("bwrap", "gcc", "umoci", "runc", "skopeo", "cosign")
    monkeypatch.delenv("COSIGN_PASSWORD", raising=False)  # the workspace key: empty password
    with serve_upstream(tmp_path) as (url, digests):
        root = write_workspace(tmp_path / "ws", url, digests)
        prefix = registry.ref("mini")
        with (root / "nanodistro.toml").open("a") as toml:
            toml.write(f'\n[registry]\nurl = "{prefix}"\n')
        watch_libgreet(root, url)
        result = CliRunner().invoke(
            app, ["factory", "run", str(root), "--once", "--json", "--quiet"]
        )
        report = json.loads(result.stdout)
        assert report["status"] == "promoted", result.output[-3000:]

    public = root / "keys" / "cosign.pub"
    layout = root / "out" / "images" / "hello"
    digest = tag_digest(layout, "stable")
    assert digest
    ref = f"{prefix}/hello@{digest}"
    verified = cosign_verify(ref, public, tmp_path)
    assert verified.returncode == 0, verified.stderr
    attested = cosign_verify_attestation(ref, public, "spdxjson", tmp_path)
    assert attested.returncode == 0, attested.stderr

    with RegistryClient(registry.host) as client:
        target = registry_target(client, "mini/hello", digest)
        (statement,) = verify_attestations(target, public.read_bytes(), "spdxjson")
        sbom = json.loads(
            (layout / "sboms" / digest.replace(":", "-") / "sbom-index.spdx.json").read_bytes()
        )
        assert statement["predicate"] == sbom

        # A later push of the same digest (the next promotion, a rollback) adds nothing.
        push_to_registry(load_workspace(root), "hello", "stable", say=lambda _m: None)
        hexdigest = digest.removeprefix("sha256:")
        for suffix in ("sig", "att"):
            manifest = client.get_manifest("mini/hello", f"sha256-{hexdigest}.{suffix}")
            assert len(manifest.document["layers"]) == 1, suffix
