"""cosign's signature and attestation documents, byte for byte (a codec: no I/O, no keys read).

What ``cosign sign --key`` stores for an image ``repo@sha256:X`` (observed with cosign 2.x):

* a *simple signing* payload ``{"critical":{"identity":{"docker-reference":"<host>/<repo>"},
  "image":{"docker-manifest-digest":"sha256:X"},"type":"cosign container image signature"},
  "optional":null}``, signed (ECDSA P-256, SHA-256, DER, base64) — the signature sits in the
  layer annotation ``dev.cosignproject.cosign/signature``;
* one OCI image manifest whose layers are those payloads (media type
  ``application/vnd.dev.cosign.simplesigning.v1+json``), config a stub image config whose
  ``rootfs.diff_ids`` are the layer digests, tagged ``sha256-X.sig`` in the image's repository;
  further signatures are appended as layers.

``cosign attest`` stores DSSE envelopes around in-toto statements the same way (layer media type
``application/vnd.dsse.envelope.v1+json``, annotation ``predicateType``, empty signature
annotation) under ``sha256-X.att``. In OCI 1.1 mode (``--registry-referrers-mode=oci-1-1``) the
signature manifest instead carries ``subject`` = the image and config media type
``application/vnd.dev.cosign.artifact.sig.v1+json`` (its artifact type), untagged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nanodistro.errors import FormatError, SignatureError
from nanodistro.formats.dsse import (
    INTOTO_PAYLOAD_TYPE,
    Envelope,
    decode_envelope,
    sign_envelope,
    verify_envelope,
)
from nanodistro.formats.dsse import (
    MEDIA_TYPE as DSSE_MEDIA_TYPE,
)
from nanodistro.formats.oci import canonical_json

__all__ = [
    "ATTESTATION_SUFFIX",
    "DSSE_MEDIA_TYPE",
    "OCI_MANIFEST",
    "PREDICATE_ANNOTATION",
    "PREDICATE_TYPES",
    "SIGNATURE_ANNOTATION",
    "SIGNATURE_ARTIFACT_TYPE",
    "SIGNATURE_SUFFIX",
    "SIMPLESIGNING_MEDIA_TYPE",
    "STATEMENT_TYPE",
    "Layer",
    "LayerRef",
    "attached_tag",
    "attestation_layer",
    "build_manifest",
    "check_simple_signing",
    "in_toto_statement",
    "names_subject",
    "parse_layers",
    "predicate_type_uri",
    "signature_layer",
    "simple_signing_payload",
    "verify_attestation_layer",
    "verify_signature_layer",
]

SIMPLESIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
PREDICATE_ANNOTATION = "predicateType"
SIGNATURE_ARTIFACT_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"
SIGNATURE_SUFFIX = "sig"
ATTESTATION_SUFFIX = "att"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
_SIMPLE_SIGNING_TYPE = "cosign container image signature"
# Go's zero time, which cosign's stub config carries.
_ZERO_TIME = "0001-01-01T00:00:00Z"

#: cosign's ``--type`` names (cosign options/predicate.go PredicateTypeMap); others are URIs.
PREDICATE_TYPES: dict[str, str] = {
    "custom": "https://cosign.sigstore.dev/attestation/v1",
    "slsaprovenance": "https://slsa.dev/provenance/v0.2",
    "slsaprovenance02": "https://slsa.dev/provenance/v0.2",
    "slsaprovenance1": "https://slsa.dev/provenance/v1",
    "spdx": "https://spdx.dev/Document",
    "spdxjson": "https://spdx.dev/Document",
    "cyclonedx": "https://cyclonedx.org/bom",
    "link": "https://in-toto.io/Link/v1",
    "vuln": "https://cosign.sigstore.dev/attestation/vuln/v1",
    "openvex": "https://openvex.dev/ns",
}


def predicate_type_uri(name: str) -> str:
    """cosign's short name -> URI; a URI passes through; anything else is an error."""
    if name in PREDICATE_TYPES:
        return PREDICATE_TYPES[name]
    if "://" in name:
        return name
    raise FormatError(
        f"unknown predicate type {name!r}: expected one of {', '.join(PREDICATE_TYPES)} or a URI",
        field="type",
    )


def attached_tag(digest: str, suffix: str) -> str:
    """``sha256:X`` + ``sig`` -> ``sha256-X.sig`` (cosign's tag for things attached to X)."""
    algorithm, sep, encoded = digest.partition(":")
    if not sep or not encoded:
        raise FormatError(f"not a digest: {digest!r}", field="digest")
    return f"{algorithm}-{encoded}.{suffix}"


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def simple_signing_payload(docker_reference: str, digest: str) -> bytes:
    """The payload ``cosign sign`` signs for ``docker_reference`` (repository, no tag) @ digest."""
    return canonical_json(
        {
            "critical": {
                "identity": {"docker-reference": docker_reference},
                "image": {"docker-manifest-digest": digest},
                "type": _SIMPLE_SIGNING_TYPE,
            },
            "optional": None,
        }
    )


def check_simple_signing(payload: bytes, digest: str, *, where: str) -> str:
    """The payload's docker-reference, after checking it is a cosign claim about ``digest``."""
    try:
        document = json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise SignatureError("signature payload is not JSON", where=where) from None
    critical = document.get("critical") if isinstance(document, dict) else None
    if not isinstance(critical, dict) or critical.get("type") != _SIMPLE_SIGNING_TYPE:
        raise SignatureError(
            f"payload is not a {_SIMPLE_SIGNING_TYPE!r} (critical.type)", where=where
        )
    image = critical.get("image")
    signed = image.get("docker-manifest-digest") if isinstance(image, dict) else None
    if signed != digest:
        raise SignatureError(
            f"signature is for digest {signed}, not {digest} (copied from another image?)",
            where=where,
        )
    identity = critical.get("identity")
    reference = identity.get("docker-reference") if isinstance(identity, dict) else None
    return reference if isinstance(reference, str) else ""


@dataclass(frozen=True)
class Layer:
    """One layer of a signature/attestation manifest: its bytes and its annotations."""

    media_type: str
    data: bytes
    annotations: Mapping[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return _sha256(self.data)

    def descriptor(self) -> dict[str, Any]:
        return {
            "mediaType": self.media_type,
            "size": len(self.data),
            "digest": self.digest,
            "annotations": dict(self.annotations),
        }


def signature_layer(sign: Callable[[bytes], bytes], payload: bytes) -> Layer:
    """The simple-signing layer: ``payload`` with its signature annotation."""
    signature = base64.b64encode(sign(payload)).decode()
    return Layer(SIMPLESIGNING_MEDIA_TYPE, payload, {SIGNATURE_ANNOTATION: signature})


def in_toto_statement(
    subject_name: str, digest: str, predicate_type: str, predicate: object
) -> dict[str, Any]:
    """An in-toto Statement v1 about one subject (the image: repository name + digest)."""
    algorithm, _, encoded = digest.partition(":")
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": subject_name, "digest": {algorithm: encoded}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    }


def attestation_layer(
    sign: Callable[[bytes], bytes], statement: Mapping[str, Any], keyid: str = ""
) -> Layer:
    """A DSSE envelope around ``statement`` as cosign stores it. ``keyid`` stays empty by
    default, as cosign writes it (a verifier skips signatures whose keyid names another key)."""
    predicate_type = statement.get("predicateType")
    if not isinstance(predicate_type, str) or not predicate_type:
        raise FormatError("statement has no predicateType", field="predicateType")
    envelope = sign_envelope(INTOTO_PAYLOAD_TYPE, canonical_json(statement), [(sign, keyid)])
    # cosign leaves the signature annotation empty on attestations (the envelope has it).
    return Layer(
        DSSE_MEDIA_TYPE,
        envelope.to_bytes(),
        {SIGNATURE_ANNOTATION: "", PREDICATE_ANNOTATION: predicate_type},
    )


def build_manifest(
    layers: Sequence[Layer], *, subject: Mapping[str, Any] | None = None
) -> tuple[bytes, bytes]:
    """(manifest, config) bytes of a signature/attestation image holding ``layers``; with
    ``subject`` (a descriptor) the OCI 1.1 form cosign pushes as a referrer."""
    config = canonical_json(
        {
            "architecture": "",
            "created": _ZERO_TIME,
            "history": [{"created": _ZERO_TIME}],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
            "config": {},
        }
    )
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": SIGNATURE_ARTIFACT_TYPE if subject is not None else OCI_CONFIG,
            "size": len(config),
            "digest": _sha256(config),
        },
        "layers": [layer.descriptor() for layer in layers],
    }
    if subject is not None:
        manifest["subject"] = {
            "mediaType": subject["mediaType"],
            "size": subject["size"],
            "digest": subject["digest"],
        }
    return canonical_json(manifest), config


@dataclass(frozen=True)
class LayerRef:
    """A layer descriptor read from a manifest (bytes fetched separately)."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str]


def parse_layers(manifest: bytes, *, where: str) -> list[LayerRef]:
    """The layer descriptors of a signature/attestation manifest."""
    try:
        document = json.loads(manifest)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise FormatError("signature manifest is not JSON", where=where) from None
    layers = document.get("layers") if isinstance(document, dict) else None
    if not isinstance(layers, list):
        raise FormatError("signature manifest has no 'layers' list", where=where)
    found = []
    for index, layer in enumerate(layers):
        if not isinstance(layer, dict):
            raise FormatError(f"layers[{index}] is not an object", where=where)
        media_type, digest, size = layer.get("mediaType"), layer.get("digest"), layer.get("size")
        annotations = layer.get("annotations") or {}
        if (
            not isinstance(media_type, str)
            or not isinstance(digest, str)
            or not isinstance(size, int)
            or not isinstance(annotations, dict)
        ):
            raise FormatError(
                f"layers[{index}] needs mediaType, digest, size (and annotations an object)",
                where=where,
            )
        found.append(
            LayerRef(media_type, digest, size, {str(k): str(v) for k, v in annotations.items()})
        )
    return found


def _check_bytes(layer: LayerRef, data: bytes, where: str) -> None:
    if _sha256(data) != layer.digest:
        raise SignatureError(
            f"layer content has digest {_sha256(data)}, manifest says {layer.digest} (tampered)",
            where=where,
        )


def verify_signature_layer(
    layer: LayerRef,
    data: bytes,
    digest: str,
    verify: Callable[[bytes, bytes], bool],
    *,
    where: str,
) -> str:
    """Check one simple-signing layer against the image ``digest``; returns docker-reference."""
    _check_bytes(layer, data, where)
    text = layer.annotations.get(SIGNATURE_ANNOTATION, "")
    try:
        signature = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"{SIGNATURE_ANNOTATION} is not base64", where=where) from None
    if not signature or not verify(data, signature):
        raise SignatureError("signature does not verify with the given key", where=where)
    return check_simple_signing(data, digest, where=where)


def names_subject(statement: Mapping[str, Any], digest: str) -> bool:
    """Whether one of the in-toto ``statement``'s subjects has ``digest`` (``algorithm:hex``)."""
    algorithm, _, encoded = digest.partition(":")
    subjects = statement.get("subject")
    return isinstance(subjects, list) and any(
        isinstance(s, dict)
        and isinstance(s.get("digest"), dict)
        and s["digest"].get(algorithm) == encoded
        for s in subjects
    )


def verify_attestation_layer(
    layer: LayerRef,
    data: bytes,
    digest: str,
    verify: Callable[[bytes, bytes], bool],
    *,
    where: str,
) -> dict[str, Any]:
    """Check one DSSE layer: envelope signature, in-toto statement, subject naming ``digest``,
    and the layer's ``predicateType`` annotation agreeing with the signed statement."""
    _check_bytes(layer, data, where)
    try:
        envelope: Envelope = decode_envelope(data, where=where)
    except FormatError as error:
        raise SignatureError(error.message, where=where) from None
    verify_envelope(envelope, verify, where=where)
    try:
        statement = envelope.statement(where=where)
    except FormatError as error:
        raise SignatureError(error.message, where=where) from None
    if not names_subject(statement, digest):
        raise SignatureError(
            f"attestation subject does not name {digest} (made for another image?)", where=where
        )
    annotated = layer.annotations.get(PREDICATE_ANNOTATION)
    if annotated is not None and annotated != statement.get("predicateType"):
        raise SignatureError(
            f"layer annotation predicateType {annotated!r} differs from the signed statement's "
            f"{statement.get('predicateType')!r}",
            where=where,
        )
    return statement
