"""Signatures and attestations stored in an OCI layout, read by ``cosign verify --local-image``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_runner import run_cli
from cosign_testlib import PASSWORD, cosign, tiny_layout
from nanodistro.errors import SignatureError
from nanodistro.image.signatures import layout_target, verify_attestations, verify_image_signatures
from nanodistro.registry import RegistryClient, push_layout
from nanodistro.trust.cosignkey import generate_key_pair
from needs_tools import require_tools
from registry_server import start_docker_registry

pytestmark = pytest.mark.slow

SPDX = {"spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "name": "app", "packages": []}


@pytest.fixture
def signed_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str, Path, Path]:
    require_tools("cosign")
    monkeypatch.setenv("COSIGN_PASSWORD", PASSWORD)
    private, public = generate_key_pair(tmp_path / "keys")
    layout = tmp_path / "app"
    digest = tiny_layout(layout)
    signed = run_cli(tmp_path, "image", "sign", f"{layout}:latest", "--key", private, "--json")
    assert signed.returncode == 0, signed.stderr
    assert json.loads(signed.stdout)["digest"] == digest
    (tmp_path / "spdx.json").write_text(json.dumps(SPDX))
    attested = run_cli(
        tmp_path, "image", "attest", layout, "--key", private, "--type", "spdxjson",
        "--predicate", tmp_path / "spdx.json",
    )  # fmt: skip
    assert attested.returncode == 0, attested.stderr
    return layout, digest, private, public


def test_layout_tags_and_cosign_local_image(signed_layout: tuple[Path, str, Path, Path]) -> None:
    layout, digest, _private, public = signed_layout
    index = json.loads((layout / "index.json").read_bytes())
    names = {
        e["annotations"]["org.opencontainers.image.ref.name"]: e["annotations"].get("kind")
        for e in index["manifests"]
    }
    hexdigest = digest.removeprefix("sha256:")
    assert names == {
        "latest": "dev.cosignproject.cosign/image",
        f"sha256-{hexdigest}.sig": "dev.cosignproject.cosign/sigs",
        f"sha256-{hexdigest}.att": "dev.cosignproject.cosign/atts",
    }
    target = layout_target(layout)
    assert verify_image_signatures(target, public.read_bytes())[0].docker_reference == "app"
    assert verify_attestations(target, public.read_bytes(), "spdxjson")[0]["predicate"] == SPDX

    checked = cosign(
        "verify", "--key", public, "--insecure-ignore-tlog=true", "--local-image", layout,
        cwd=layout.parent,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    attestation = cosign(
        "verify-attestation", "--key", public, "--type", "spdxjson",
        "--insecure-ignore-tlog=true", "--local-image", layout, cwd=layout.parent,
    )  # fmt: skip
    assert attestation.returncode == 0, attestation.stderr
    other = generate_key_pair(layout.parent / "other")[1]
    refused = cosign(
        "verify", "--key", other, "--insecure-ignore-tlog=true", "--local-image", layout,
        cwd=layout.parent,
    )  # fmt: skip
    assert refused.returncode != 0
    with pytest.raises(SignatureError, match="none valid: signature does not verify"):
        verify_image_signatures(target, other.read_bytes())


def test_tampered_layout_signature_refused(signed_layout: tuple[Path, str, Path, Path]) -> None:
    """The attack: edit the signed payload blob in place (claims another digest)."""
    layout, digest, _private, public = signed_layout
    target = layout_target(layout, "latest")
    tag = f"sha256-{digest.removeprefix('sha256:')}.sig"
    entry = next(
        e
        for e in json.loads((layout / "index.json").read_bytes())["manifests"]
        if e["annotations"]["org.opencontainers.image.ref.name"] == tag
    )
    manifest = json.loads(
        (layout / "blobs" / "sha256" / entry["digest"].split(":")[1]).read_bytes()
    )
    blob = layout / "blobs" / "sha256" / manifest["layers"][0]["digest"].split(":")[1]
    blob.write_bytes(blob.read_bytes().replace(b"sha256:", b"sha256:0", 1)[:-1] + b"}")
    with pytest.raises(SignatureError, match="tampered"):
        verify_image_signatures(target, public.read_bytes())
    refused = cosign(
        "verify", "--key", public, "--insecure-ignore-tlog=true", "--local-image", layout,
        cwd=layout.parent,
    )  # fmt: skip
    assert refused.returncode != 0


def test_signed_layout_still_pushes_its_image(
    signed_layout: tuple[Path, str, Path, Path], tmp_path: Path
) -> None:
    """The .sig/.att entries are not images: pushing the layout pushes the image alone."""
    layout, digest, _private, _public = signed_layout
    with start_docker_registry(tmp_path / "registry") as registry:
        assert push_layout(layout, registry.ref("app:v1")) == digest
        with RegistryClient(registry.host) as client:
            assert client.list_tags("app") == ["v1"]
