"""Reading and writing an OCI image layout directory (image-spec image-layout.md).

``oci-layout`` + ``index.json`` + ``blobs/<alg>/<hex>``. Blobs are addressed only through
validated digests (no path can escape ``blobs/``), read back verified, and written atomically;
``index.json`` is replaced atomically.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, BinaryIO

from nanodistro.errors import RegistryError
from nanodistro.formats.oci import canonical_json, sha256_digest
from nanodistro.registry.mediatypes import (
    IMAGE_MANIFEST_TYPES,
    INDEX_TYPES,
    OCI_INDEX,
    REF_NAME_ANNOTATION,
)
from nanodistro.registry.reference import validate_digest
from nanodistro.util.atomic import atomic_write_bytes, atomic_writer

LAYOUT_VERSION = "1.0.0"
_READ_SIZE = 1024 * 1024

Descriptor = dict[str, Any]


def check_descriptor(descriptor: Any, where: str) -> Descriptor:
    """A descriptor with string ``mediaType``, valid ``digest`` and non-negative int ``size``."""
    if not isinstance(descriptor, dict):
        raise RegistryError("descriptor is not a JSON object", where=where)
    media_type, digest, size = (descriptor.get(k) for k in ("mediaType", "digest", "size"))
    if not isinstance(media_type, str) or not media_type:
        raise RegistryError("descriptor has no mediaType string", where=where, field="mediaType")
    if not isinstance(digest, str):
        raise RegistryError("descriptor has no digest string", where=where, field="digest")
    validate_digest(digest, where=where)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise RegistryError("descriptor size is not a non-negative integer", where=where)
    return descriptor


def _annotations(descriptor: Descriptor) -> dict[str, Any]:
    annotations = descriptor.get("annotations")
    return annotations if isinstance(annotations, dict) else {}


def ref_name_of(descriptor: Descriptor) -> str | None:
    """The ``org.opencontainers.image.ref.name`` annotation of an index.json entry, if any."""
    value = _annotations(descriptor).get(REF_NAME_ANNOTATION)
    return value if isinstance(value, str) else None


# cosign's tags for what it attaches to an image (sha256-<hex>.sig|.att|.sbom) and the ``kind``
# annotation ``cosign save`` gives such index.json entries.
_ATTACHMENT_TAG = re.compile(r"^[a-z0-9]+-[a-f0-9]{32,}\.(sig|att|sbom)$")
_ATTACHMENT_KINDS = frozenset(
    f"dev.cosignproject.cosign/{kind}" for kind in ("sigs", "atts", "sboms")
)


def is_attachment(descriptor: Descriptor) -> bool:
    """An index.json entry holding signatures/attestations of an image, not an image itself."""
    annotations = _annotations(descriptor)
    if annotations.get("kind") in _ATTACHMENT_KINDS:
        return True
    name = annotations.get(REF_NAME_ANNOTATION)
    return isinstance(name, str) and bool(_ATTACHMENT_TAG.match(name))


def children(media_type: str, document: dict[str, Any], where: str) -> list[Descriptor]:
    """Descriptors a manifest/index refers to that must exist first: an index's manifests, an
    image manifest's config and layers. ``subject`` is a parent, so it is not included."""
    if media_type in INDEX_TYPES:
        entries = document.get("manifests")
        if not isinstance(entries, list):
            raise RegistryError("index has no 'manifests' list", where=where, field="manifests")
        return [check_descriptor(e, f"{where} manifests[{i}]") for i, e in enumerate(entries)]
    if media_type in IMAGE_MANIFEST_TYPES:
        layers = document.get("layers")
        if not isinstance(layers, list):
            raise RegistryError("manifest has no 'layers' list", where=where, field="layers")
        found = [check_descriptor(document.get("config"), f"{where} config")]
        found += [check_descriptor(e, f"{where} layers[{i}]") for i, e in enumerate(layers)]
        return found
    return []


class OciLayout:
    """An OCI image layout directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @classmethod
    def create(cls, root: Path) -> OciLayout:
        """Open ``root`` for writing, creating ``oci-layout``/``index.json`` when missing."""
        layout = cls(root)
        (layout.root / "blobs").mkdir(parents=True, exist_ok=True)
        marker = layout.root / "oci-layout"
        if not marker.exists():
            atomic_write_bytes(marker, canonical_json({"imageLayoutVersion": LAYOUT_VERSION}))
        if not (layout.root / "index.json").exists():
            layout.write_index([])
        return layout

    def check(self) -> None:
        marker = self.root / "oci-layout"
        try:
            version = json.loads(marker.read_bytes()).get("imageLayoutVersion")
        except FileNotFoundError:
            raise RegistryError(
                "not an OCI image layout (no oci-layout file)", where=str(self.root)
            ) from None
        except (OSError, ValueError, AttributeError) as exc:
            raise RegistryError(f"unreadable oci-layout: {exc}", where=str(marker)) from None
        if version != LAYOUT_VERSION:
            raise RegistryError(
                f"imageLayoutVersion {version!r}, expected {LAYOUT_VERSION!r}", where=str(marker)
            )

    # -- index.json ----------------------------------------------------------------------------

    def read_index(self) -> dict[str, Any]:
        self.check()
        path = self.root / "index.json"
        try:
            document = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise RegistryError("layout has no index.json", where=str(self.root)) from None
        except (OSError, ValueError) as exc:
            raise RegistryError(f"unreadable index.json: {exc}", where=str(path)) from None
        if not isinstance(document, dict) or document.get("schemaVersion") != 2:
            raise RegistryError(
                "index.json is not an image index (schemaVersion 2)", where=str(path)
            )
        children(OCI_INDEX, document, str(path))
        return document

    def manifests(self) -> list[Descriptor]:
        entries: list[Descriptor] = self.read_index()["manifests"]
        return entries

    def write_index(self, manifests: list[Descriptor]) -> None:
        document = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
        atomic_write_bytes(self.root / "index.json", json.dumps(document, indent=2).encode())

    def add_manifest(self, descriptor: Descriptor, ref_name: str | None) -> None:
        """Add ``descriptor`` to index.json; an entry with the same ref name is replaced."""
        entry = dict(descriptor)
        if ref_name:
            entry["annotations"] = {**_annotations(entry), REF_NAME_ANNOTATION: ref_name}
        kept = [
            d
            for d in self.manifests()
            if not (ref_name and ref_name_of(d) == ref_name)
            and not (not ref_name and d.get("digest") == entry["digest"])
        ]
        self.write_index([*kept, entry])

    # -- blobs ---------------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        validate_digest(digest, where=str(self.root))
        algorithm, encoded = digest.split(":", 1)
        return self.root / "blobs" / algorithm / encoded

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def open_blob(self, digest: str) -> BinaryIO:
        path = self.blob_path(digest)
        try:
            return path.open("rb")
        except FileNotFoundError:
            raise RegistryError(f"layout has no blob {digest}", where=str(self.root)) from None

    def blob_size(self, digest: str) -> int:
        try:
            return self.blob_path(digest).stat().st_size
        except FileNotFoundError:
            raise RegistryError(f"layout has no blob {digest}", where=str(self.root)) from None

    def read_blob(self, digest: str, *, max_size: int | None = None) -> bytes:
        """The blob's bytes, verified against ``digest``."""
        if max_size is not None and self.blob_size(digest) > max_size:
            raise RegistryError(f"blob {digest} larger than {max_size} bytes", where=str(self.root))
        with self.open_blob(digest) as handle:
            data = handle.read()
        algorithm = digest.split(":", 1)[0]
        if algorithm not in ("sha256", "sha512"):
            raise RegistryError(f"unsupported digest algorithm in {digest}", where=str(self.root))
        actual = f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"
        if actual != digest:
            raise RegistryError(
                f"blob content has digest {actual} (tampered or corrupt layout)",
                where=str(self.blob_path(digest)),
            )
        return data

    def write_blob(self, data: bytes) -> str:
        digest = sha256_digest(data)
        path = self.blob_path(digest)
        if not path.exists():
            with atomic_writer(path) as out:
                out.write(data)
        return digest
