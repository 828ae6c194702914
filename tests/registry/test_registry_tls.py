"""HTTPS registries: certificates are verified unless insecure; loopback falls back to http."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from registry_testdata import make_layout

from nanodistro.errors import RegistryError
from nanodistro.registry import RegistryClient, pull, push_layout
from registry_server import RunningRegistry, find_tool, start_docker_registry


def test_tls_registry_needs_trust_or_insecure(tmp_path: Path) -> None:
    built = make_layout(tmp_path / "layout")
    with start_docker_registry(tmp_path / "reg", tls=True) as registry:
        ref = registry.ref("tls/img:v1")
        with pytest.raises(RegistryError, match=r"certificate not trusted.*insecure"):
            push_layout(built.root, ref)
        with pytest.raises(RegistryError, match="certificate not trusted"):
            push_layout(built.root, ref, plain_http=False)
        digest = push_layout(built.root, ref, insecure=True)
        assert digest == built.top_digest
        crane = subprocess.run(
            [find_tool("crane"), "digest", "--insecure", ref],
            capture_output=True,
            text=True,
            check=True,
        )
        assert crane.stdout.strip() == digest
        assert pull(ref, tmp_path / "pulled", insecure=True) == digest
        with RegistryClient(registry.host, insecure=True) as client:
            assert client._base_url() == f"https://{registry.host}"


def test_loopback_plain_http_is_found_after_https(
    docker_registry: RunningRegistry, tmp_path: Path
) -> None:
    with RegistryClient(docker_registry.host) as client:
        client.ping()
        assert client._base_url() == f"http://{docker_registry.host}"
