"""The OCI provider against a real docker-registry on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json

from nanodistro.monitor.check import check_targets_async
from nanodistro.monitor.recipes import target_from_document
from nanodistro.registry.client import RegistryClient
from registry_server import RunningRegistry, docker_registry

__all__ = ["docker_registry"]

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


def push_tags(registry: RunningRegistry, repository: str, tags: list[str]) -> None:
    with RegistryClient(registry.host) as client:
        config = client.upload_bytes(repository, b"{}")
        for tag in tags:
            layer = client.upload_bytes(repository, tag.encode())
            manifest = {
                "schemaVersion": 2,
                "mediaType": MANIFEST_TYPE,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": config,
                    "size": 2,
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": layer,
                        "size": len(tag),
                    }
                ],
            }
            client.put_manifest(repository, tag, json.dumps(manifest).encode(), MANIFEST_TYPE)


def test_oci_tags_from_a_real_registry(docker_registry: RunningRegistry) -> None:
    push_tags(docker_registry, "tools/demo", ["v1.2.0", "v1.10.0", "v1.11.0-rc.1", "latest"])
    document = {
        "package": {"name": "demo", "version": "1.2.0"},
        "update": {
            "enabled": True,
            "oci": {
                "identifier": docker_registry.ref("tools/demo"),
                "strip-prefix": "v",
                "tag-filter-prefix": "v1.",
            },
        },
    }
    missing = {
        "package": {"name": "gone", "version": "1"},
        "update": {"enabled": True, "oci": {"identifier": docker_registry.ref("no/such")}},
    }
    targets = [target_from_document(d, None) for d in (document, missing)]
    found, failed = asyncio.run(check_targets_async(targets))
    assert (found.status, found.latest, found.kind) == ("update", "1.10.0", "oci")
    assert failed.status == "error" and "no/such" in (failed.message or "")
