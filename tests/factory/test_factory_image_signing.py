"""The factory signs and attests every image it promotes and pushes, and anyone can check it.

One factory cycle (the mini catalog, pushing to a real docker-registry on loopback) is shared by
the module. The real cosign verifies each pushed ``stable`` digest with the workspace's
``keys/cosign.pub`` and finds its SLSA provenance, SPDX and CycloneDX attestations (``cosign
tree`` lists them); ``nanodistro verify`` passes every check for the registry reference and for
the image's OCI layout; a tampered attestation or another image's signature copied over is
refused by both, naming the check. The image provenance names the config and every installed
package, passes the SLSA schema, and changes when a package or the config changes.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner

from cosign_testlib import cosign, cosign_verify, cosign_verify_attestation
from mini_catalog import release_libgreet, serve_upstream, watch_libgreet, write_workspace
from nanodistro.cli import app
from nanodistro.factory.catalog import ensure_keys
from nanodistro.factory.imagesign import provenance_file, sign_layout_image
from nanodistro.factory.promote import push_to_registry
from nanodistro.factory.workspace import load_workspace
from nanodistro.formats.intoto import parse_provenance, parse_statement
from nanodistro.image.diff import load_image_packages
from nanodistro.image.signatures import registry_target, verify_attestations
from nanodistro.image.tags import tag_digest
from nanodistro.registry import RegistryClient
from nanodistro.trust.cosign import Layer, build_manifest
from needs_tools import require_tools
from registry_server import RunningRegistry, start_docker_registry

SCHEMA = json.loads(
    (Path(__file__).parents[1] / "formats/data/slsa_provenance_v1.schema.json").read_text()
)
TYPES = {
    "slsaprovenance1": "https://slsa.dev/provenance/v1",
    "spdxjson": "https://spdx.dev/Document",
    "cyclonedx": "https://cyclonedx.org/bom",
}
CHECKS = {
    "image signature",
    "provenance signature",
    "provenance subject",
    "builder id",
    "source repositories",
    "sbom",
}
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass
class Cycle:
    root: Path
    registry: RunningRegistry
    prefix: str  # host/mini
    served: Path  # the upstream's directory (release_libgreet)
    digests: dict[str, str]  # image -> stable digest after the first cycle

    @property
    def public(self) -> Path:
        return self.root / "keys" / "cosign.pub"

    def ref(self, name: str) -> str:
        return f"{self.prefix}/{name}@{self.digests[name]}"

    def layout(self, name: str) -> Path:
        return self.root / "out" / "images" / name


def run_once(root: Path) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["factory", "run", str(root), "--once", "--json", "--quiet"])
    report: dict[str, Any] = json.loads(result.stdout)
    assert report["status"] == "promoted", result.output[-3000:]
    return report


@pytest.fixture(scope="module")
def cycle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cycle]:
    require_tools("bwrap", "gcc", "umoci", "runc", "skopeo", "cosign")
    base = tmp_path_factory.mktemp("image-trust")
    with contextlib.ExitStack() as stack, pytest.MonkeyPatch.context() as patch:
        patch.delenv("COSIGN_PASSWORD", raising=False)  # the workspace key: empty password
        registry = stack.enter_context(start_docker_registry(base / "registry"))
        url, upstream = stack.enter_context(serve_upstream(base))
        root = write_workspace(base / "ws", url, upstream)
        prefix = registry.ref("mini")
        with (root / "nanodistro.toml").open("a") as toml:
            toml.write(f'\n[registry]\nurl = "{prefix}"\n')
        watch_libgreet(root, url)
        run_once(root)
        digests = {}
        for name in ("hello", "static"):
            digest = tag_digest(root / "out" / "images" / name, "stable")
            assert digest, name
            digests[name] = digest
        yield Cycle(root, registry, prefix, base / "upstream", digests)


def verify_cli(target: str, cycle: Cycle) -> tuple[int, dict[str, dict[str, Any]]]:
    """``nanodistro verify TARGET --key keys/cosign.pub --keyring keys/ --json``: exit code and
    the checks by name."""
    keys = cycle.root / "keys"
    result = CliRunner().invoke(
        app, ["verify", target, "--key", str(cycle.public), "--keyring", str(keys), "--json"]
    )
    report = json.loads(result.stdout)
    return result.exit_code, {c["check"]: c for c in report["checks"]}


def cosign_payloads(stdout: str) -> list[dict[str, Any]]:
    """The statements ``cosign verify-attestation`` printed (one DSSE envelope a line)."""
    envelopes = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return [json.loads(base64.b64decode(e["payload"])) for e in envelopes]


# -- cosign ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_cosign_verifies_the_signature_and_every_attestation(cycle: Cycle, tmp_path: Path) -> None:
    for name in ("hello", "static"):
        ref = cycle.ref(name)
        verified = cosign_verify(ref, cycle.public, tmp_path)
        assert verified.returncode == 0, verified.stderr
        for kind, uri in TYPES.items():
            attested = cosign_verify_attestation(ref, cycle.public, kind, tmp_path)
            assert attested.returncode == 0, (kind, attested.stderr)
            statements = [s for s in cosign_payloads(attested.stdout) if s["predicateType"] == uri]
            # provenance once; SBOMs for the index and the one arch
            assert len(statements) == (1 if kind == "slsaprovenance1" else 2), kind
            for statement in statements:
                assert statement["subject"] == [
                    {
                        "name": f"{cycle.prefix}/{name}",
                        "digest": {"sha256": cycle.digests[name].removeprefix("sha256:")},
                    }
                ]

    tree = cosign("tree", "--allow-http-registry", cycle.ref("hello"), cwd=tmp_path)
    assert tree.returncode == 0, tree.stderr
    hexdigest = cycle.digests["hello"].removeprefix("sha256:")
    with RegistryClient(cycle.registry.host) as client:
        for suffix, layers in (("sig", 1), ("att", 5)):
            tag = f"sha256-{hexdigest}.{suffix}"
            assert tag in tree.stdout, tree.stdout
            manifest = client.get_manifest("mini/hello", tag).document
            assert len(manifest["layers"]) == layers, suffix
            for layer in manifest["layers"]:
                assert layer["digest"] in tree.stdout, (suffix, tree.stdout)


@pytest.mark.slow
def test_signing_again_adds_nothing(cycle: Cycle) -> None:
    """A later push or promotion of the same digest (a rollback) signs and attests nothing new."""
    workspace = load_workspace(cycle.root)
    layout = cycle.layout("hello")
    hexdigest = cycle.digests["hello"].removeprefix("sha256:")
    with RegistryClient(cycle.registry.host) as client:
        before = {
            s: client.get_manifest("mini/hello", f"sha256-{hexdigest}.{s}").digest
            for s in ("sig", "att")
        }
        index = (layout / "index.json").read_bytes()
        push_to_registry(workspace, "hello", "stable", say=lambda _m: None)
        sign_layout_image(workspace, layout, "stable", say=lambda _m: None)
        after = {
            s: client.get_manifest("mini/hello", f"sha256-{hexdigest}.{s}").digest
            for s in ("sig", "att")
        }
        assert after == before
        assert (layout / "index.json").read_bytes() == index
        # the stored SBOM is what is attested
        target = registry_target(client, "mini/hello", cycle.digests["hello"])
        for kind, suffix in (("spdxjson", "spdx"), ("cyclonedx", "cdx")):
            attested = verify_attestations(target, cycle.public.read_bytes(), kind)
            kept = sorted((layout / "sboms" / f"sha256-{hexdigest}").glob(f"*.{suffix}.json"))
            assert [p.name for p in kept] == [
                f"sbom-index.{suffix}.json",
                f"sbom-x86_64.{suffix}.json",
            ]
            # the stored SBOMs are what is attested (index first)
            assert [s["predicate"] for s in attested] == [json.loads(p.read_bytes()) for p in kept]


# -- nanodistro verify -------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("where", ["registry", "layout"])
def test_nanodistro_verify_passes_every_check(cycle: Cycle, where: str) -> None:
    target = cycle.ref("hello") if where == "registry" else f"{cycle.layout('hello')}:stable"
    code, checks = verify_cli(target, cycle)
    assert set(checks) == CHECKS
    assert code == 0, json.dumps(checks, indent=1)
    assert all(c["ok"] for c in checks.values()), checks
    assert "https://nanodistro.dev/factory/v1#mini allowed" in checks["builder id"]["reason"]
    assert "SPDX attestation lists all" in checks["sbom"]["reason"]
    assert cycle.digests["hello"] in checks["provenance subject"]["reason"]


def blob_bytes(client: RegistryClient, repository: str, digest: str) -> bytes:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "blob"
        client.fetch_blob(repository, digest, path)
        return path.read_bytes()


@contextlib.contextmanager
def replaced_tag(
    client: RegistryClient, repository: str, tag: str, manifest: bytes
) -> Iterator[None]:
    """Put ``manifest`` under ``tag`` for the duration; the original goes back afterwards."""
    original = client.get_manifest(repository, tag).data
    client.put_manifest(repository, tag, manifest, OCI_MANIFEST)
    try:
        yield
    finally:
        client.put_manifest(repository, tag, original, OCI_MANIFEST)


def tampered_att_manifest(client: RegistryClient, repository: str, tag: str) -> bytes:
    """The ``.att`` manifest with one byte of the provenance statement changed (its envelope's
    signature kept), its blobs uploaded."""
    document = client.get_manifest(repository, tag).document
    layers = []
    for descriptor in document["layers"]:
        data = blob_bytes(client, repository, descriptor["digest"])
        if descriptor["annotations"].get("predicateType") == TYPES["slsaprovenance1"]:
            envelope = json.loads(data)
            payload = base64.b64decode(envelope["payload"])
            at = payload.index(b"/build-1") + len(b"/build-")
            payload = payload[:at] + b"7" + payload[at + 1 :]  # invocationId build-1 -> build-7
            envelope["payload"] = base64.b64encode(payload).decode()
            data = json.dumps(envelope).encode()
            client.upload_bytes(repository, data)
        layers.append(Layer(descriptor["mediaType"], data, descriptor["annotations"]))
    manifest, config = build_manifest(layers)
    client.upload_bytes(repository, config)
    return manifest


@pytest.mark.slow
def test_tampered_provenance_attestation_is_refused(cycle: Cycle, tmp_path: Path) -> None:
    """The attack: re-push the ``.att`` manifest with one byte of the provenance changed."""
    ref = cycle.ref("static")
    tag = f"sha256-{cycle.digests['static'].removeprefix('sha256:')}.att"
    with RegistryClient(cycle.registry.host) as client:
        forged = tampered_att_manifest(client, "mini/static", tag)
        with replaced_tag(client, "mini/static", tag, forged):
            refused = cosign_verify_attestation(ref, cycle.public, "slsaprovenance1", tmp_path)
            assert refused.returncode != 0
            assert "none of the attestations matched the predicate type" in refused.stderr
            # the untouched SBOM attestations still verify
            sbom = cosign_verify_attestation(ref, cycle.public, "spdxjson", tmp_path)
            assert sbom.returncode == 0, sbom.stderr
            code, checks = verify_cli(ref, cycle)
    assert code == 1
    failed = {name for name, c in checks.items() if not c["ok"]}
    assert failed == {"provenance signature", "provenance subject", "builder id",
                      "source repositories"}  # fmt: skip
    reason = checks["provenance signature"]["reason"]
    assert "no attestation of type https://slsa.dev/provenance/v1" in reason
    assert "1 invalid: " in reason and "no envelope signature verifies" in reason
    assert checks["provenance subject"]["reason"] == "provenance not verified"
    assert checks["image signature"]["ok"] and checks["sbom"]["ok"]


@pytest.mark.slow
def test_another_images_signature_and_attestations_are_refused(
    cycle: Cycle, tmp_path: Path
) -> None:
    """The attack: copy hello's valid ``.sig`` and ``.att`` manifests to static's tags."""
    hello = cycle.digests["hello"].removeprefix("sha256:")
    static = cycle.digests["static"].removeprefix("sha256:")
    ref = cycle.ref("static")
    with RegistryClient(cycle.registry.host) as client:
        copied = {}
        for suffix in ("sig", "att"):
            manifest = client.get_manifest("mini/hello", f"sha256-{hello}.{suffix}")
            for layer in manifest.document["layers"]:  # blobs into static's repository
                client.upload_bytes(
                    "mini/static", blob_bytes(client, "mini/hello", layer["digest"])
                )
            config = manifest.document["config"]["digest"]
            client.upload_bytes("mini/static", blob_bytes(client, "mini/hello", config))
            copied[suffix] = manifest.data
        with (
            replaced_tag(client, "mini/static", f"sha256-{static}.sig", copied["sig"]),
            replaced_tag(client, "mini/static", f"sha256-{static}.att", copied["att"]),
        ):
            refused = cosign_verify(ref, cycle.public, tmp_path)
            assert refused.returncode != 0
            assert "no matching signatures" in refused.stderr
            refused = cosign_verify_attestation(ref, cycle.public, "slsaprovenance1", tmp_path)
            assert refused.returncode != 0
            code, checks = verify_cli(ref, cycle)
    assert code == 1
    assert not checks["image signature"]["ok"]
    assert (
        f"signature is for digest {cycle.digests['hello']}" in checks["image signature"]["reason"]
    )
    assert not checks["provenance signature"]["ok"]
    assert "none valid" in checks["provenance signature"]["reason"]
    # and back: the originals verify again
    assert cosign_verify(ref, cycle.public, tmp_path).returncode == 0


# -- keys --------------------------------------------------------------------------------------


def test_ensure_keys_creates_a_cosign_key_pair(tmp_path: Path) -> None:
    require_tools("cosign")
    root = write_workspace(tmp_path / "ws", "http://127.0.0.1:9", {})
    workspace = load_workspace(root)
    ensure_keys(workspace, lambda _m: None)
    private, public = root / "keys" / "cosign.key", root / "keys" / "cosign.pub"
    assert b"ENCRYPTED SIGSTORE PRIVATE KEY" in private.read_bytes()
    assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    kept = private.read_bytes()
    ensure_keys(workspace, lambda _m: None)
    assert private.read_bytes() == kept  # an existing pair is kept

    blob = tmp_path / "blob.txt"
    blob.write_bytes(b"signed by the workspace key\n")
    env = {"COSIGN_PASSWORD": ""}
    signed = cosign(
        "sign-blob", "--key", private, "--tlog-upload=false", "--yes",
        "--output-signature", tmp_path / "blob.sig", blob, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    verified = cosign(
        "verify-blob", "--key", public, "--insecure-ignore-tlog=true",
        "--signature", tmp_path / "blob.sig", blob, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    assert "Verified OK" in verified.stderr


# -- provenance --------------------------------------------------------------------------------


def _dependencies(statement: dict[str, Any]) -> dict[str, dict[str, Any]]:
    deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    return {d.get("name") or d["uri"]: d for d in deps}


def _stored(cycle: Cycle, name: str, digest: str) -> dict[str, Any]:
    statement: dict[str, Any] = json.loads(provenance_file(cycle.layout(name), digest).read_bytes())
    return statement


@pytest.mark.slow
def test_image_provenance_names_every_input_and_changes_with_them(cycle: Cycle) -> None:
    root = cycle.root
    before = {name: _stored(cycle, name, cycle.digests[name]) for name in cycle.digests}
    for name, statement in before.items():
        jsonschema.validate(statement, SCHEMA)
        provenance = parse_provenance(parse_statement(json.dumps(statement).encode()))
        assert provenance.build_type == "https://nanodistro.dev/build/image/v1"
        assert provenance.builder_id == "https://nanodistro.dev/factory/v1#mini"
        deps = _dependencies(statement)
        config = root / "images" / f"{name}.yaml"
        assert deps[f"images/{name}.yaml"]["digest"] == {
            "sha256": hashlib.sha256(config.read_bytes()).hexdigest()
        }
        # every installed package, by file digest and APK identity, in the repository version
        installed = load_image_packages(f"{cycle.layout(name)}:stable").archs["x86_64"].packages
        packages = {k: d for k, d in deps.items() if d["annotations"]["kind"] == "package"}
        assert set(packages) == {f"{n}-{v}" for n, v in installed.items()}
        for dep in packages.values():
            assert dep["uri"].startswith("out/packages/versions/1/x86_64/"), dep
            data = (root / dep["uri"]).read_bytes()
            assert dep["digest"] == {"sha256": hashlib.sha256(data).hexdigest()}
            assert dep["annotations"]["apkChecksum"].startswith("Q1")
        assert "out/packages/versions/1" in deps
    # what the registry holds is that statement, about the pushed name
    with RegistryClient(cycle.registry.host) as client:
        target = registry_target(client, "mini/hello", cycle.digests["hello"])
        (attested,) = verify_attestations(target, cycle.public.read_bytes(), "slsaprovenance1")
    jsonschema.validate(attested, SCHEMA)
    assert attested["predicate"] == before["hello"]["predicate"]

    # a new libgreet release rebuilds hello (a changed package); static's config changes
    release_libgreet(cycle.served, "1.3.0")
    config = root / "images" / "static.yaml"
    config.write_text(config.read_text() + "  org.opencontainers.image.description: changed\n")
    report = run_once(root)
    assert set(report["changed_images"]) == {"hello", "static"}
    after = {}
    for name in ("hello", "static"):
        digest = tag_digest(cycle.layout(name), "stable")
        assert digest and digest != cycle.digests[name]
        after[name] = _stored(cycle, name, digest)
        jsonschema.validate(after[name], SCHEMA)
        assert (
            before[name]["predicate"]["buildDefinition"]
            != after[name]["predicate"]["buildDefinition"]
        )
    old, new = _dependencies(before["hello"]), _dependencies(after["hello"])
    assert old["images/hello.yaml"] == new["images/hello.yaml"]
    changed = {k for k in old.keys() ^ new.keys() if k.startswith("hello-")}
    assert changed, (sorted(old), sorted(new))
    old, new = _dependencies(before["static"]), _dependencies(after["static"])
    assert old["images/static.yaml"]["digest"] != new["images/static.yaml"]["digest"]
    assert {k for k, d in old.items() if d["annotations"]["kind"] == "package"} == {
        k for k, d in new.items() if d["annotations"]["kind"] == "package"
    }
    # the new stable digests verify, in the layout and in the registry
    for target in (f"{cycle.layout('static')}:stable", f"{cycle.prefix}/static:stable"):
        code, checks = verify_cli(target, cycle)
        assert code == 0, json.dumps(checks, indent=1)


@pytest.mark.slow
def test_layouts_promoted_before_signing_get_signed(cycle: Cycle, tmp_path: Path) -> None:
    """A layout whose stable image has no signature (promoted by an older nanodistro, or a cycle
    killed before it signed) is signed and attested by the next cycle; signed ones are left."""
    import shutil

    from nanodistro.factory.imagesign import sign_unsigned_stable

    root = tmp_path / "ws"
    shutil.copytree(cycle.root, root, symlinks=True)
    index_file = root / "out/images/hello/index.json"
    index = json.loads(index_file.read_text())
    kept = [
        m
        for m in index["manifests"]
        if not str(
            m.get("annotations", {}).get("org.opencontainers.image.ref.name", "")
        ).startswith("sha256-")
    ]
    assert len(kept) < len(index["manifests"])  # it was signed
    index_file.write_text(json.dumps({**index, "manifests": kept}))
    workspace = load_workspace(root)
    said: list[str] = []
    assert sign_unsigned_stable(workspace, say=said.append) == ["hello"]
    assert sign_unsigned_stable(workspace, say=said.append) == []
    code, checks = verify_cli(f"{root}/out/images/hello:stable", cycle)
    assert code == 0, checks
    assert set(checks) == CHECKS
