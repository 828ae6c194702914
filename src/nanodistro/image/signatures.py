"""Signatures and attestations attached to images, stored where cosign stores them.

A *target* is one image (manifest or index) by digest, in a registry or in an OCI layout:

* registry: the ``sha256-<hex>.sig`` / ``.att`` tags in the image's repository (cosign's default
  scheme; appending a layer to an existing manifest, as cosign does), plus for signatures an
  OCI 1.1 referrer (``subject`` = the image) when the registry has the referrers API or when
  asked (the registry client keeps the referrers fallback tag otherwise);
* OCI layout: the same tags as ``index.json`` entries (``org.opencontainers.image.ref.name``),
  annotated ``kind: dev.cosignproject.cosign/sigs|atts`` and the image ``.../image|imageIndex``
  as ``cosign save`` writes a layout, so ``cosign verify --local-image`` reads a single-image
  layout (cosign takes the first entry of each kind).

Verification trusts nothing from the store but bytes matching digests: each layer's bytes are
checked against the manifest's digest, each signature against the public key, and each claim
against the target digest (``trust/cosign.py``). A signature or attestation is accepted when at
least one verifies, as ``cosign verify`` does; when none does, the SignatureError says why.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from nanodistro.errors import NanodistroError, RegistryError, SignatureError
from nanodistro.formats.dsse import decode_envelope, pae
from nanodistro.formats.oci import canonical_json
from nanodistro.registry.client import RegistryClient, compute_digest
from nanodistro.registry.layout import OciLayout, is_attachment, ref_name_of
from nanodistro.registry.mediatypes import INDEX_TYPES, REF_NAME_ANNOTATION
from nanodistro.registry.reference import parse_reference
from nanodistro.trust.cosign import (
    ATTESTATION_SUFFIX,
    DSSE_MEDIA_TYPE,
    OCI_MANIFEST,
    SIGNATURE_ANNOTATION,
    SIGNATURE_ARTIFACT_TYPE,
    SIGNATURE_SUFFIX,
    SIMPLESIGNING_MEDIA_TYPE,
    Layer,
    LayerRef,
    attached_tag,
    attestation_layer,
    build_manifest,
    in_toto_statement,
    names_subject,
    parse_layers,
    predicate_type_uri,
    signature_layer,
    simple_signing_payload,
    verify_attestation_layer,
    verify_signature_layer,
)
from nanodistro.trust.ecdsa import EcdsaSigner, verify_signature

__all__ = [
    "AttachResult",
    "SignatureCheck",
    "Target",
    "attest_image",
    "image_statement",
    "layout_target",
    "open_target",
    "registry_target",
    "sign_image",
    "verify_attestations",
    "verify_image_signatures",
]

KIND_ANNOTATION = "kind"
KIND_IMAGE = "dev.cosignproject.cosign/image"
KIND_INDEX = "dev.cosignproject.cosign/imageIndex"
KIND_SIGS = "dev.cosignproject.cosign/sigs"
KIND_ATTS = "dev.cosignproject.cosign/atts"
_Claim = TypeVar("_Claim")
# Signature layers are a few hundred bytes; attestation layers carry whole SBOMs.
_MAX_LAYER = 64 << 20


class _Store(Protocol):
    where: str

    def tagged(self, tag: str) -> bytes | None: ...

    def blob(self, layer: LayerRef) -> bytes: ...

    def put(
        self, tag: str | None, manifest: bytes, config: bytes, layers: Sequence[Layer]
    ) -> str: ...

    def referrer_manifests(self, digest: str) -> list[tuple[str, bytes]]: ...

    def has_referrers_api(self, digest: str) -> bool: ...


@dataclass(frozen=True)
class Target:
    """One image by digest, and where its signatures live."""

    name: str  # docker-reference / statement subject name: registry/repository or layout name
    digest: str
    media_type: str
    size: int
    store: _Store

    @property
    def where(self) -> str:
        return f"{self.store.where}@{self.digest}"

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "size": self.size, "digest": self.digest}


# -- registry ----------------------------------------------------------------------------------


class _RegistryStore:
    def __init__(self, client: RegistryClient, repository: str) -> None:
        self.client = client
        self.repository = repository
        self.where = f"{client.registry}/{repository}"

    def tagged(self, tag: str) -> bytes | None:
        try:
            return self.client.get_manifest(self.repository, tag).data
        except RegistryError as error:
            if "HTTP 404" in error.message:
                return None
            raise

    def blob(self, layer: LayerRef) -> bytes:
        if layer.size > _MAX_LAYER:
            raise SignatureError(
                f"layer {layer.digest} larger than {_MAX_LAYER} bytes", where=self.where
            )
        with tempfile.TemporaryDirectory(prefix="nanodistro-sig-") as scratch:
            path = Path(scratch) / "blob"
            # fetch_blob checks the bytes against the digest and the size while streaming.
            self.client.fetch_blob(self.repository, layer.digest, path, size=layer.size)
            return path.read_bytes()

    def put(self, tag: str | None, manifest: bytes, config: bytes, layers: Sequence[Layer]) -> str:
        self.client.upload_bytes(self.repository, config)
        for layer in layers:
            self.client.upload_bytes(self.repository, layer.data)
        return self.client.put_manifest(
            self.repository, tag or compute_digest(manifest), manifest, OCI_MANIFEST
        )

    def referrer_manifests(self, digest: str) -> list[tuple[str, bytes]]:
        found = []
        for entry in self.client.referrers(self.repository, digest):
            artifact = entry.get("artifactType")
            if artifact is not None and artifact != SIGNATURE_ARTIFACT_TYPE:
                continue
            manifest = self.client.get_manifest(self.repository, str(entry.get("digest")))
            config = manifest.document.get("config")
            if isinstance(config, dict) and config.get("mediaType") == SIGNATURE_ARTIFACT_TYPE:
                found.append((f"referrer {manifest.digest}", manifest.data))
        return found

    def has_referrers_api(self, digest: str) -> bool:
        return self.client.has_referrers_api(self.repository, digest)


def registry_target(client: RegistryClient, repository: str, reference: str) -> Target:
    """The image ``repository:reference`` (tag or digest) served by ``client``."""
    manifest = client.get_manifest(repository, reference)
    return Target(
        name=f"{client.registry}/{repository}",
        digest=manifest.digest,
        media_type=manifest.media_type,
        size=len(manifest.data),
        store=_RegistryStore(client, repository),
    )


# -- OCI layout --------------------------------------------------------------------------------


@contextlib.contextmanager
def _layout_lock(root: Path) -> Iterator[None]:
    # The same lock file image/tags.py serializes writers of a layout on.
    with (root / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class _LayoutStore:
    def __init__(self, layout: OciLayout, target_digest: str) -> None:
        self.layout = layout
        self.target_digest = target_digest
        self.where = str(layout.root)

    def tagged(self, tag: str) -> bytes | None:
        for entry in self.layout.manifests():
            if ref_name_of(entry) == tag:
                return self.layout.read_blob(str(entry["digest"]), max_size=_MAX_LAYER)
        return None

    def blob(self, layer: LayerRef) -> bytes:
        try:
            return self.layout.read_blob(layer.digest, max_size=_MAX_LAYER)
        except RegistryError as error:
            raise SignatureError(error.message, where=error.where) from None

    def put(self, tag: str | None, manifest: bytes, config: bytes, layers: Sequence[Layer]) -> str:
        if tag is None:
            raise SignatureError("OCI layouts keep signatures under tags only", where=self.where)
        kind = KIND_ATTS if tag.endswith("." + ATTESTATION_SUFFIX) else KIND_SIGS
        with _layout_lock(self.layout.root):
            for data in (config, *(layer.data for layer in layers)):
                self.layout.write_blob(data)
            digest = self.layout.write_blob(manifest)
            entries = [e for e in self.layout.manifests() if ref_name_of(e) != tag]
            for entry in entries:
                # Mark the image for cosign's layout reader (save.go writes the same kinds).
                if entry.get("digest") == self.target_digest and not is_attachment(entry):
                    kind_of_image = (
                        KIND_INDEX if entry.get("mediaType") in INDEX_TYPES else KIND_IMAGE
                    )
                    entry["annotations"] = {
                        **(entry.get("annotations") or {}),
                        KIND_ANNOTATION: kind_of_image,
                    }
            entries.append(
                {
                    "mediaType": OCI_MANIFEST,
                    "size": len(manifest),
                    "digest": digest,
                    "annotations": {REF_NAME_ANNOTATION: tag, KIND_ANNOTATION: kind},
                }
            )
            self.layout.write_index(entries)
        return digest

    def referrer_manifests(self, digest: str) -> list[tuple[str, bytes]]:
        return []  # a layout has no referrers API; its signatures are the tagged entries

    def has_referrers_api(self, digest: str) -> bool:
        return False


def _layout_roots(layout: OciLayout) -> list[dict[str, Any]]:
    """index.json entries that are images: not signatures, not listed by another entry."""
    entries = [e for e in layout.manifests() if not is_attachment(e)]
    listed: set[str] = set()
    for entry in entries:
        if entry.get("mediaType") in INDEX_TYPES:
            document = json.loads(layout.read_blob(str(entry["digest"]), max_size=_MAX_LAYER))
            listed.update(str(c.get("digest")) for c in document.get("manifests", []))
    roots: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if entry["digest"] not in listed:
            roots.setdefault(str(entry["digest"]), entry)
    return list(roots.values())


def layout_target(root: Path, tag: str | None = None) -> Target:
    """The image ``tag`` names in the OCI layout ``root`` (no tag: its one image)."""
    layout = OciLayout(Path(root))
    where = str(layout.root)
    if tag is not None:
        named = [e for e in layout.manifests() if ref_name_of(e) == tag]
        if not named:
            raise SignatureError(f"layout has no tag {tag!r}", where=where)
        entry = named[0]
    else:
        roots = _layout_roots(layout)
        if len(roots) != 1:
            names = sorted(filter(None, (ref_name_of(e) for e in roots)))
            raise SignatureError(
                f"layout holds {len(roots)} images; name one as LAYOUT:TAG ({', '.join(names)})",
                where=where,
            )
        entry = roots[0]
    digest = str(entry["digest"])
    return Target(
        name=layout.root.resolve().name,
        digest=digest,
        media_type=str(entry["mediaType"]),
        size=int(entry["size"]),
        store=_LayoutStore(layout, digest),
    )


@contextlib.contextmanager
def open_target(
    text: str,
    *,
    insecure: bool = False,
    username: str | None = None,
    password: str | None = None,
) -> Iterator[Target]:
    """``LAYOUT[:TAG]`` (a directory with ``index.json``) or a registry reference."""
    layout, _, tag = text.rpartition(":")
    if (Path(text) / "index.json").is_file():
        yield layout_target(Path(text))
        return
    if layout and tag and (Path(layout) / "index.json").is_file():
        yield layout_target(Path(layout), tag)
        return
    ref = parse_reference(text)
    with RegistryClient(
        ref.api_host, insecure=insecure, username=username, password=password
    ) as client:
        yield registry_target(client, ref.repository, ref.identifier)


# -- signing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttachResult:
    """What sign_image/attest_image stored."""

    tag: str  # sha256-<hex>.sig|.att
    manifest_digest: str | None  # None when nothing new was stored
    added: tuple[str, ...]  # digests of the layers appended
    kept: tuple[str, ...]  # digests of equivalent layers already there (not added again)
    referrer: str | None = None  # digest of the OCI 1.1 referrer manifest, if one was pushed


def _existing(store: _Store, tag: str) -> tuple[list[LayerRef], list[Layer]]:
    data = store.tagged(tag)
    if data is None:
        return [], []
    refs = parse_layers(data, where=f"{store.where}:{tag}")
    return refs, [Layer(r.media_type, store.blob(r), r.annotations) for r in refs]


def sign_image(
    target: Target, signer: EcdsaSigner, *, referrers: bool | None = None
) -> AttachResult:
    """Sign ``target`` (simple signing, ``cosign sign --key``). A signature by the same key over
    the same claim already there is kept instead of adding another (cosign's dupe check), so
    signing is idempotent. ``referrers``: None pushes an OCI 1.1 referrer too when the registry
    has the referrers API; True always (fallback tag otherwise); False never."""
    tag = attached_tag(target.digest, SIGNATURE_SUFFIX)
    payload = simple_signing_payload(target.name, target.digest)
    _refs, layers = _existing(target.store, tag)
    for layer in layers:
        if layer.media_type == SIMPLESIGNING_MEDIA_TYPE and layer.data == payload:
            signature = layer.annotations.get(SIGNATURE_ANNOTATION, "")
            if verify_signature(signer.public_pem, layer.data, signature):
                return AttachResult(tag, None, (), (layer.digest,))
    new = signature_layer(signer.sign, payload)
    manifest, config = build_manifest([*layers, new])
    digest = target.store.put(tag, manifest, config, [*layers, new])
    referrer = None
    if referrers or (referrers is None and target.store.has_referrers_api(target.digest)):
        manifest, config = build_manifest([new], subject=target.descriptor())
        referrer = target.store.put(None, manifest, config, [new])
    return AttachResult(tag, digest, (new.digest,), (), referrer)


def image_statement(target: Target, predicate_type: str, predicate: object) -> dict[str, Any]:
    """An in-toto statement about ``target`` (subject: its name and digest, as cosign)."""
    return in_toto_statement(
        target.name, target.digest, predicate_type_uri(predicate_type), predicate
    )


def attest_image(
    target: Target, signer: EcdsaSigner, statements: Sequence[Mapping[str, Any]]
) -> AttachResult:
    """Attach each statement (``image_statement``, or any in-toto statement whose subject is the
    target) in a signed DSSE envelope under ``sha256-<hex>.att``; a statement already attached
    with a valid signature by this key is kept, not added again."""
    tag = attached_tag(target.digest, ATTESTATION_SUFFIX)
    _refs, layers = _existing(target.store, tag)
    present: set[bytes] = set()
    for layer in layers:
        if layer.media_type != DSSE_MEDIA_TYPE:
            continue
        with contextlib.suppress(NanodistroError):
            envelope = decode_envelope(layer.data)
            if any(
                verify_signature(
                    signer.public_pem, pae(envelope.payload_type, envelope.payload), s.sig
                )
                for s in envelope.signatures
            ):
                present.add(envelope.payload)
    added: list[Layer] = []
    kept: list[str] = []
    for statement in statements:
        _check_subject(statement, target)
        if canonical_json(dict(statement)) in present:
            kept.append(str(statement.get("predicateType")))
            continue
        layer = attestation_layer(signer.sign, statement)
        present.add(canonical_json(dict(statement)))
        added.append(layer)
    if not added:
        return AttachResult(tag, None, (), tuple(kept))
    manifest, config = build_manifest([*layers, *added])
    digest = target.store.put(tag, manifest, config, [*layers, *added])
    return AttachResult(tag, digest, tuple(layer.digest for layer in added), tuple(kept))


def _check_subject(statement: Mapping[str, Any], target: Target) -> None:
    if not names_subject(statement, target.digest):
        raise SignatureError(
            f"statement ({statement.get('predicateType')}) has no subject with digest {target.digest}",
            where=target.where,
        )


# -- verification ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignatureCheck:
    """One signature that verified."""

    layer_digest: str
    docker_reference: str
    source: str  # "tag sha256-<hex>.sig" or "referrer sha256:..."


def _verifier(public_pem: bytes) -> Any:
    def verify(data: bytes, signature: bytes) -> bool:
        return verify_signature(public_pem, data, signature)

    return verify


def _verified_layers(
    target: Target,
    manifest: bytes,
    media_type: str,
    verify_layer: Callable[..., _Claim],
    verify: Callable[[bytes, bytes], bool],
    refused: list[str],
    *,
    where: str,
) -> list[tuple[str, _Claim]]:
    """(layer digest, what ``verify_layer`` returns) for each ``media_type`` layer of
    ``manifest`` that verifies; why each other one was refused is appended to ``refused``
    (one bad layer does not hide a good one, as with cosign)."""
    good: list[tuple[str, _Claim]] = []
    for layer in parse_layers(manifest, where=where):
        if layer.media_type != media_type:
            continue
        try:
            claim = verify_layer(
                layer,
                target.store.blob(layer),
                target.digest,
                verify,
                where=f"{where} layer {layer.digest[:19]}",
            )
        except NanodistroError as error:
            refused.append(error.message)
            continue
        good.append((layer.digest, claim))
    return good


def verify_image_signatures(target: Target, public_pem: bytes) -> list[SignatureCheck]:
    """Every signature of ``target`` that verifies with ``public_pem`` (at least one, else
    SignatureError naming what was found and why each was refused)."""
    tag = attached_tag(target.digest, SIGNATURE_SUFFIX)
    sources: list[tuple[str, bytes]] = []
    tagged = target.store.tagged(tag)
    if tagged is not None:
        sources.append((f"tag {tag}", tagged))
    sources += target.store.referrer_manifests(target.digest)
    verify = _verifier(public_pem)
    good: list[SignatureCheck] = []
    refused: list[str] = []
    for source, manifest in sources:
        references = _verified_layers(
            target,
            manifest,
            SIMPLESIGNING_MEDIA_TYPE,
            verify_signature_layer,
            verify,
            refused,
            where=f"{target.store.where} {source}",
        )
        good += [SignatureCheck(digest, reference, source) for digest, reference in references]
    if good:
        return good
    if not refused:
        raise SignatureError(
            f"no signatures found (looked for tag {tag} and OCI 1.1 referrers)", where=target.where
        )
    raise SignatureError(
        f"{len(refused)} signature(s) found, none valid: {'; '.join(dict.fromkeys(refused))}",
        where=target.where,
    )


def verify_attestations(
    target: Target, public_pem: bytes, predicate_type: str | None = None
) -> list[dict[str, Any]]:
    """The in-toto statements attached to ``target`` that verify with ``public_pem`` and, with
    ``predicate_type`` (cosign name or URI), have that type; SignatureError when there is none."""
    wanted = predicate_type_uri(predicate_type) if predicate_type else None
    tag = attached_tag(target.digest, ATTESTATION_SUFFIX)
    manifest = target.store.tagged(tag)
    if manifest is None:
        raise SignatureError(f"no attestations found (no tag {tag})", where=target.where)
    refused: list[str] = []
    verified = _verified_layers(
        target,
        manifest,
        DSSE_MEDIA_TYPE,
        verify_attestation_layer,
        _verifier(public_pem),
        refused,
        where=f"{target.store.where}:{tag}",
    )
    statements = [statement for _, statement in verified]
    matching = [s for s in statements if wanted is None or s.get("predicateType") == wanted]
    if matching:
        return matching
    if statements:
        found = sorted({str(s.get("predicateType")) for s in statements})
        # a refused one may well be the wanted type (its claims cannot be read unverified)
        invalid = (
            f"; {len(refused)} invalid: {'; '.join(dict.fromkeys(refused))}" if refused else ""
        )
        raise SignatureError(
            f"no attestation of type {wanted} (valid ones have {', '.join(found)}{invalid})",
            where=target.where,
        )
    if refused:
        raise SignatureError(
            f"{len(refused)} attestation(s) found, none valid: {'; '.join(dict.fromkeys(refused))}",
            where=target.where,
        )
    raise SignatureError(f"no attestations found in {tag}", where=target.where)
