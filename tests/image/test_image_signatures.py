"""Image signatures and attestations in a real registry, checked against the real cosign both ways.

What we write, ``cosign verify`` / ``verify-attestation`` / ``tree`` accept; what cosign writes,
our verify functions accept; tampering (a signature moved to another image, a changed envelope, a
changed layer blob) is refused by both.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli_runner import run_cli
from cosign_testlib import (
    PASSWORD,
    cosign,
    cosign_verify,
    cosign_verify_attestation,
    push_tiny_image,
)
from nanodistro.errors import SignatureError
from nanodistro.image.signatures import (
    Target,
    attest_image,
    image_statement,
    registry_target,
    sign_image,
    verify_attestations,
    verify_image_signatures,
)
from nanodistro.registry import RegistryClient
from nanodistro.trust.cosignkey import generate_key_pair, load_signer
from needs_tools import require_tools
from registry_server import RunningRegistry, start_docker_registry

pytestmark = pytest.mark.slow

SPDX = {"spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "name": "app", "packages": []}
PROVENANCE = {
    "buildDefinition": {
        "buildType": "https://nanodistro.dev/build/image/v1",
        "externalParameters": {},
    },
    "runDetails": {"builder": {"id": "https://nanodistro.dev/factory/v1"}},
}


@pytest.fixture
def docker_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    with start_docker_registry(tmp_path_factory.mktemp("registry")) as registry:
        yield registry


@pytest.fixture
def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    require_tools("cosign")
    monkeypatch.setenv("COSIGN_PASSWORD", PASSWORD)
    return generate_key_pair(tmp_path / "keys")


def _target(client: RegistryClient, digest: str):  # type: ignore[no-untyped-def]
    return registry_target(client, "app", digest)


def test_cosign_accepts_what_the_cli_writes(
    tmp_path: Path,
    docker_registry: RunningRegistry,
    keys: tuple[Path, Path],
) -> None:
    private, public = keys
    digest = push_tiny_image(tmp_path, docker_registry.ref("app:v1"))
    ref = docker_registry.ref(f"app@{digest}")
    signed = run_cli(
        tmp_path, "image", "sign", docker_registry.ref("app:v1"), "--key", private, "--json"
    )
    assert signed.returncode == 0, signed.stderr
    summary = json.loads(signed.stdout)
    assert summary["digest"] == digest
    assert summary["tag"] == f"sha256-{digest.removeprefix('sha256:')}.sig"
    (tmp_path / "spdx.json").write_text(json.dumps(SPDX))
    (tmp_path / "prov.json").write_text(json.dumps(PROVENANCE))
    for kind, predicate in (("spdxjson", "spdx.json"), ("slsaprovenance1", "prov.json")):
        attested = run_cli(
            tmp_path, "image", "attest", ref, "--key", private, "--type", kind,
            "--predicate", tmp_path / predicate,
        )  # fmt: skip
        assert attested.returncode == 0, attested.stderr
        assert "attested:" in attested.stdout

    verified = cosign_verify(ref, public, tmp_path)
    assert verified.returncode == 0, verified.stderr
    claims = json.loads(verified.stdout.strip().splitlines()[0])
    assert claims[0]["critical"]["image"]["docker-manifest-digest"] == digest
    assert claims[0]["critical"]["identity"]["docker-reference"] == docker_registry.ref("app")
    for kind, predicate_uri, body in (
        ("slsaprovenance1", "https://slsa.dev/provenance/v1", PROVENANCE),
        ("spdxjson", "https://spdx.dev/Document", SPDX),
    ):
        checked = cosign_verify_attestation(ref, public, kind, tmp_path)
        assert checked.returncode == 0, checked.stderr
        envelope = json.loads(checked.stdout.strip().splitlines()[0])
        statement = json.loads(base64.b64decode(envelope["payload"]))
        assert statement["predicateType"] == predicate_uri
        assert statement["predicate"] == body
        assert statement["subject"] == [
            {
                "name": docker_registry.ref("app"),
                "digest": {"sha256": digest.removeprefix("sha256:")},
            }
        ]
    tree = cosign("tree", "--allow-http-registry", ref, cwd=tmp_path)
    assert tree.returncode == 0, tree.stderr
    assert f"{digest.replace(':', '-')}.sig" in tree.stdout
    assert f"{digest.replace(':', '-')}.att" in tree.stdout
    assert tree.stdout.count("🍒") == 3  # one signature layer, two attestation layers

    with RegistryClient(docker_registry.host) as client:
        target = _target(client, digest)
        checks = verify_image_signatures(target, public.read_bytes())
        assert [c.docker_reference for c in checks] == [docker_registry.ref("app")]
        statements = verify_attestations(target, public.read_bytes(), "slsaprovenance1")
        assert [s["predicate"] for s in statements] == [PROVENANCE]
        with pytest.raises(SignatureError, match=r"no attestation of type https://openvex\.dev/ns"):
            verify_attestations(target, public.read_bytes(), "openvex")

    again = run_cli(tmp_path, "image", "sign", ref, "--key", private)
    assert again.returncode == 0 and "already signed" in again.stdout


def test_second_key_appends_and_cosign_sees_both(
    tmp_path: Path,
    docker_registry: RunningRegistry,
    keys: tuple[Path, Path],
) -> None:
    private, public = keys
    other_private, other_public = generate_key_pair(tmp_path / "other")
    digest = push_tiny_image(tmp_path, docker_registry.ref("app:v1"))
    ref = docker_registry.ref(f"app@{digest}")
    with RegistryClient(docker_registry.host) as client:
        target = _target(client, digest)
        first = sign_image(target, load_signer(private))
        assert first.added and first.referrer is None  # distribution 2.8: no referrers API
        assert sign_image(target, load_signer(private)).kept == first.added  # idempotent
        second = sign_image(target, load_signer(other_private))
        manifest = client.get_manifest("app", first.tag)
        assert [layer["digest"] for layer in manifest.document["layers"]] == [
            *first.added,
            *second.added,
        ]
    for key in (public, other_public):
        assert cosign_verify(ref, key, tmp_path).returncode == 0


def test_we_accept_what_cosign_writes(
    tmp_path: Path,
    docker_registry: RunningRegistry,
    keys: tuple[Path, Path],
) -> None:
    made = cosign("generate-key-pair", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    private, public = tmp_path / "cosign.key", tmp_path / "cosign.pub"
    digest = push_tiny_image(tmp_path, docker_registry.ref("app:v1"))
    ref = docker_registry.ref(f"app@{digest}")
    signed = cosign(
        "sign", "--yes", "--key", private, "--tlog-upload=false", "--allow-http-registry", ref,
        cwd=tmp_path,
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    (tmp_path / "spdx.json").write_text(json.dumps(SPDX))
    attested = cosign(
        "attest", "--yes", "--key", private, "--tlog-upload=false", "--allow-http-registry",
        "--type", "spdxjson", "--predicate", tmp_path / "spdx.json", ref, cwd=tmp_path,
    )  # fmt: skip
    assert attested.returncode == 0, attested.stderr
    with RegistryClient(docker_registry.host) as client:
        target = _target(client, digest)
        assert len(verify_image_signatures(target, public.read_bytes())) == 1
        statements = verify_attestations(target, public.read_bytes(), "spdxjson")
        assert statements[0]["predicate"] == SPDX
        # Our attestation appended to cosign's manifest: both readable by cosign and by us.
        statement = image_statement(target, "slsaprovenance1", PROVENANCE)
        attest_image(target, load_signer(private), [statement])
        assert len(verify_attestations(target, public.read_bytes())) == 2
    assert cosign_verify_attestation(ref, public, "spdxjson", tmp_path).returncode == 0
    assert cosign_verify_attestation(ref, public, "slsaprovenance1", tmp_path).returncode == 0


def test_signature_moved_to_another_image_is_refused(
    tmp_path: Path,
    docker_registry: RunningRegistry,
    keys: tuple[Path, Path],
) -> None:
    """The attack: copy image A's valid signature manifest to B's ``.sig`` tag."""
    private, public = keys
    signed_digest = push_tiny_image(tmp_path, docker_registry.ref("app:a"), b"a\n")
    other_digest = push_tiny_image(tmp_path, docker_registry.ref("app:b"), b"b\n")
    with RegistryClient(docker_registry.host) as client:
        result = sign_image(_target(client, signed_digest), load_signer(private))
        manifest = client.get_manifest("app", result.tag)
        forged_tag = f"sha256-{other_digest.removeprefix('sha256:')}.sig"
        client.put_manifest("app", forged_tag, manifest.data, manifest.media_type)
        with pytest.raises(SignatureError, match=f"signature is for digest {signed_digest}"):
            verify_image_signatures(_target(client, other_digest), public.read_bytes())
    refused = cosign_verify(docker_registry.ref(f"app@{other_digest}"), public, tmp_path)
    assert refused.returncode != 0
    assert "no matching signatures" in refused.stderr
    unsigned = push_tiny_image(tmp_path, docker_registry.ref("app:c"), b"c\n")
    with (
        RegistryClient(docker_registry.host) as client,
        pytest.raises(SignatureError, match="no signatures found"),
    ):
        verify_image_signatures(_target(client, unsigned), public.read_bytes())
    assert cosign_verify(docker_registry.ref(f"app@{unsigned}"), public, tmp_path).returncode != 0


def _attest_spdx(client: RegistryClient, digest: str, private: Path) -> tuple[Target, str, str]:
    """Attest ``app@digest`` with the SPDX predicate; returns the target, the ``.att`` tag and
    the digest of its only layer (the one the tampering tests change)."""
    target = _target(client, digest)
    result = attest_image(target, load_signer(private), [image_statement(target, "spdxjson", SPDX)])
    blob = client.get_manifest("app", result.tag).document["layers"][0]["digest"]
    return target, result.tag, blob


def _cosign_verify_spdx(
    registry: RunningRegistry, digest: str, public: Path, cwd: Path
) -> subprocess.CompletedProcess[str]:
    return cosign_verify_attestation(registry.ref(f"app@{digest}"), public, "spdxjson", cwd)


def _swap_att_layer(client: RegistryClient, tag: str, data: bytes) -> None:
    """Replace the only layer of the ``.att`` manifest by ``data`` (keeping its annotations)."""
    from nanodistro.trust.cosign import Layer, build_manifest

    document = client.get_manifest("app", tag).document
    annotations = document["layers"][0]["annotations"]
    layer = Layer(document["layers"][0]["mediaType"], data, annotations)
    manifest, config = build_manifest([layer])
    client.upload_bytes("app", config)
    client.upload_bytes("app", data)
    client.put_manifest("app", tag, manifest, "application/vnd.oci.image.manifest.v1+json")


def test_tampered_attestation_payload_is_refused(
    tmp_path: Path,
    docker_registry: RunningRegistry,
    keys: tuple[Path, Path],
) -> None:
    """The attack: keep the envelope's signature, change the statement it signs."""
    private, public = keys
    digest = push_tiny_image(tmp_path, docker_registry.ref("app:v1"))
    with RegistryClient(docker_registry.host) as client:
        target, tag, blob = _attest_spdx(client, digest, private)
        path = tmp_path / "layer.json"
        client.fetch_blob("app", blob, path)
        envelope = json.loads(path.read_bytes())
        statement = json.loads(base64.b64decode(envelope["payload"]))
        statement["predicate"]["name"] = "something-else"
        envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
        _swap_att_layer(client, tag, json.dumps(envelope).encode())
        with pytest.raises(SignatureError, match="no envelope signature verifies"):
            verify_attestations(target, public.read_bytes(), "spdxjson")
    refused = _cosign_verify_spdx(docker_registry, digest, public, tmp_path)
    assert refused.returncode != 0
    assert "no matching attestations" in refused.stderr


def test_tampered_attestation_blob_is_refused(
    tmp_path: Path,
    docker_registry: RunningRegistry,
    keys: tuple[Path, Path],
) -> None:
    """The attack: rewrite the stored layer blob behind the registry's back."""
    private, public = keys
    digest = push_tiny_image(tmp_path, docker_registry.ref("app:v1"))
    with RegistryClient(docker_registry.host) as client:
        target, _tag, blob = _attest_spdx(client, digest, private)
        stored = docker_registry.blob_data_path(blob)
        data = stored.read_bytes()
        at = data.index(b'"payload":"') + len(b'"payload":"') + 5
        flipped = b"A" if data[at : at + 1] != b"A" else b"B"
        stored.write_bytes(data[:at] + flipped + data[at + 1 :])  # same size, other bytes
        with pytest.raises(SignatureError, match="none valid: downloaded blob has digest"):
            verify_attestations(target, public.read_bytes(), "spdxjson")
    refused = _cosign_verify_spdx(docker_registry, digest, public, tmp_path)
    assert refused.returncode != 0


def test_oci11_referrers_both_ways(
    tmp_path: Path,
    docker_registry: RunningRegistry,
    keys: tuple[Path, Path],
) -> None:
    """Our referrer (registry without the API: the fallback tag) is what cosign's OCI 1.1 mode
    reads, and cosign's OCI 1.1 signature is found by our verify."""
    private, public = keys
    ours = push_tiny_image(tmp_path, docker_registry.ref("app:ours"), b"ours\n")
    theirs = push_tiny_image(tmp_path, docker_registry.ref("app:theirs"), b"theirs\n")
    with RegistryClient(docker_registry.host) as client:
        result = sign_image(_target(client, ours), load_signer(private), referrers=True)
        assert result.referrer is not None
        assert result.referrer in [e["digest"] for e in client.referrers("app", ours)]
    checked = cosign_verify(
        docker_registry.ref(f"app@{ours}"), public, tmp_path, "--experimental-oci11"
    )
    assert checked.returncode == 0, checked.stderr
    signed = cosign(
        "sign", "--yes", "--key", private, "--tlog-upload=false", "--allow-http-registry",
        "--registry-referrers-mode=oci-1-1", docker_registry.ref(f"app@{theirs}"),
        cwd=tmp_path, env={"COSIGN_EXPERIMENTAL": "1"},
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    with RegistryClient(docker_registry.host) as client:
        checks = verify_image_signatures(_target(client, theirs), public.read_bytes())
        assert [c.source.split()[0] for c in checks] == ["referrer"]
