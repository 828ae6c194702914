"""OCI 1.1 referrers (cosign v3 stores signatures this way): ours and oras's agree, on a
registry with the referrers API (crane's) and one without it (docker-registry 2.8: tag schema)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from registry_testdata import make_layout

from nanodistro.registry import RegistryClient, compute_digest, push_layout
from registry_server import RunningRegistry, find_tool

EMPTY = "application/vnd.oci.empty.v1+json"
OUR_TYPE = "application/vnd.nanodistro.test.signature"
ORAS_TYPE = "application/vnd.example.oras-attached"


def oras(*args: str, cwd: Path) -> str:
    result = subprocess.run(
        [find_tool("oras"), *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )
    assert result.returncode == 0, f"oras {args}: {result.stderr}"
    return result.stdout


@pytest.mark.parametrize("server", ["docker_registry", "crane_registry"])
def test_referrers_agree_with_oras(
    server: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    registry: RunningRegistry = request.getfixturevalue(server)
    built = make_layout(tmp_path / "layout")
    subject = push_layout(built.root, registry.ref("signed/img:v1"))
    index_size = (built.root / "blobs/sha256" / subject.split(":")[1]).stat().st_size
    with RegistryClient(registry.host) as client:
        empty = client.upload_bytes("signed/img", b"{}")
        payload = client.upload_bytes("signed/img", b"not really a signature")
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "artifactType": OUR_TYPE,
                "config": {"mediaType": EMPTY, "digest": empty, "size": 2},
                "layers": [
                    {
                        "mediaType": "application/octet-stream",
                        "digest": payload,
                        "size": len(b"not really a signature"),
                    }
                ],
                "subject": {
                    "mediaType": "application/vnd.oci.image.index.v1+json",
                    "digest": subject,
                    "size": index_size,
                },
                "annotations": {"org.opencontainers.image.created": "1970-01-01T00:00:00Z"},
            }
        ).encode()
        ours = client.put_manifest(
            "signed/img",
            compute_digest(manifest),
            manifest,
            "application/vnd.oci.image.manifest.v1+json",
        )
        [found] = client.referrers("signed/img", subject)
        assert (found["digest"], found["artifactType"]) == (ours, OUR_TYPE)
        assert found["annotations"]["org.opencontainers.image.created"] == "1970-01-01T00:00:00Z"

    ref = registry.ref(f"signed/img@{subject}")
    discovered = json.loads(oras("discover", "--plain-http", "--format", "json", ref, cwd=tmp_path))
    assert [(m["digest"], m["artifactType"]) for m in discovered["manifests"]] == [(ours, OUR_TYPE)]

    (tmp_path / "note.txt").write_text("attached by oras\n")
    oras("attach", "--plain-http", "--artifact-type", ORAS_TYPE, ref, "note.txt", cwd=tmp_path)
    with RegistryClient(registry.host) as client:
        types = sorted(r["artifactType"] for r in client.referrers("signed/img", subject))
        assert types == sorted([OUR_TYPE, ORAS_TYPE])
        [only] = client.referrers("signed/img", subject, artifact_type=ORAS_TYPE)
        assert only["artifactType"] == ORAS_TYPE
