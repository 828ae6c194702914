"""OCI image-spec documents: descriptors, manifests, indexes, image configs, layout files.

Pure codec: dicts/bytes in and out, no I/O. JSON is written compactly with keys in the order the
image spec (and go-containerregistry, which apko uses) lists them, so the same inputs always give
the same bytes and therefore the same digests.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from nanodistro.errors import FormatError

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MEDIA_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"

INDEX_TYPES = (MEDIA_INDEX, MEDIA_DOCKER_LIST)
MANIFEST_TYPES = (MEDIA_MANIFEST, MEDIA_DOCKER_MANIFEST)
GZIP_LAYER_TYPES = (MEDIA_LAYER_GZIP, MEDIA_DOCKER_LAYER)

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_CREATED = "org.opencontainers.image.created"
ANNOTATION_SOURCE = "org.opencontainers.image.source"
ANNOTATION_REVISION = "org.opencontainers.image.revision"

OCI_LAYOUT_FILE = b'{"imageLayoutVersion":"1.0.0"}'

_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$|^sha512:[0-9a-f]{128}$")


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(document: Any) -> bytes:
    """Compact JSON in insertion order (what Go's encoding/json gives for structs)."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def check_digest(value: Any, *, where: str, field_name: str) -> str:
    if not isinstance(value, str) or not _DIGEST_RE.match(value):
        raise FormatError(
            f"expected a digest like sha256:<64 hex>, got {str(value)[:80]!r}",
            where=where,
            field=field_name,
        )
    return value


@dataclass(frozen=True)
class Platform:
    architecture: str
    os: str = "linux"
    variant: str | None = None
    os_features: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.os_features:
            out["os.features"] = list(self.os_features)
        if self.variant:
            out["variant"] = self.variant
        return out

    @classmethod
    def from_dict(cls, data: Any, *, where: str) -> Platform:
        if not isinstance(data, dict):
            raise FormatError("platform must be an object", where=where, field="platform")
        return cls(
            architecture=str(data.get("architecture", "")),
            os=str(data.get("os", "")),
            variant=data.get("variant") or None,
            os_features=tuple(data.get("os.features") or ()),
        )

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    artifact_type: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "size": self.size,
            "digest": self.digest,
        }
        if self.annotations:
            out["annotations"] = dict(sorted(self.annotations.items()))
        if self.platform is not None:
            out["platform"] = self.platform.to_dict()
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out

    @classmethod
    def for_bytes(cls, media_type: str, data: bytes, **extra: Any) -> Descriptor:
        return cls(media_type, sha256_digest(data), len(data), **extra)

    @classmethod
    def from_dict(cls, data: Any, *, where: str, field_name: str = "descriptor") -> Descriptor:
        if not isinstance(data, dict):
            raise FormatError("descriptor must be an object", where=where, field=field_name)
        size = data.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise FormatError(
                f"size must be a non-negative integer, got {size!r}",
                where=where,
                field=f"{field_name}.size",
            )
        media_type = data.get("mediaType")
        if not isinstance(media_type, str) or not media_type:
            raise FormatError("mediaType is missing", where=where, field=f"{field_name}.mediaType")
        annotations = data.get("annotations") or {}
        if not isinstance(annotations, dict):
            raise FormatError(
                "annotations must be an object", where=where, field=f"{field_name}.annotations"
            )
        platform = data.get("platform")
        return cls(
            media_type=media_type,
            digest=check_digest(data.get("digest"), where=where, field_name=f"{field_name}.digest"),
            size=size,
            platform=Platform.from_dict(platform, where=where) if platform is not None else None,
            annotations={str(k): str(v) for k, v in annotations.items()},
            artifact_type=data.get("artifactType"),
        )


def image_manifest(
    config: Descriptor, layers: list[Descriptor], annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": config.to_dict(),
        "layers": [layer.to_dict() for layer in layers],
    }
    if annotations:
        doc["annotations"] = dict(sorted(annotations.items()))
    return doc


def image_index(
    manifests: list[Descriptor], annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [m.to_dict() for m in manifests],
    }
    if annotations:
        doc["annotations"] = dict(sorted(annotations.items()))
    return doc


@dataclass
class HistoryEntry:
    created: str
    created_by: str = "apko"
    author: str = "apko"
    comment: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"author": self.author, "created": self.created}
        out["created_by"] = self.created_by
        if self.comment:
            out["comment"] = self.comment
        return out


@dataclass
class ImageConfigDoc:
    """The image configuration blob (image-spec config.md)."""

    architecture: str
    created: str
    diff_ids: list[str]
    os: str = "linux"
    variant: str | None = None
    os_features: list[str] = field(default_factory=list)
    author: str = ""
    entrypoint: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    user: str = ""
    working_dir: str = ""
    stop_signal: str = ""
    volumes: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    history: list[HistoryEntry] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        config: dict[str, Any] = {}
        if self.user:
            config["User"] = self.user
        if self.env:
            config["Env"] = list(self.env)
        if self.entrypoint:
            config["Entrypoint"] = list(self.entrypoint)
        if self.cmd:
            config["Cmd"] = list(self.cmd)
        if self.volumes:
            config["Volumes"] = {v: {} for v in sorted(self.volumes)}
        if self.working_dir:
            config["WorkingDir"] = self.working_dir
        if self.labels:
            config["Labels"] = dict(sorted(self.labels.items()))
        if self.stop_signal:
            config["StopSignal"] = self.stop_signal
        doc: dict[str, Any] = {"architecture": self.architecture}
        if self.author:
            doc["author"] = self.author
        doc["created"] = self.created
        doc["history"] = [h.to_dict() for h in self.history]
        doc["os"] = self.os
        if self.os_features:
            doc["os.features"] = list(self.os_features)
        doc["rootfs"] = {"type": "layers", "diff_ids": list(self.diff_ids)}
        doc["config"] = config
        if self.variant:
            doc["variant"] = self.variant
        return doc


# ---------------------------------------------------------------------------------------------
# Reading


def parse_json(data: bytes, *, where: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        line = getattr(error, "lineno", None)
        raise FormatError(f"invalid JSON ({error})", where=where, line=line) from None
    if not isinstance(doc, dict):
        raise FormatError("expected a JSON object", where=where)
    return doc


@dataclass
class ParsedIndex:
    media_type: str
    manifests: list[Descriptor]
    annotations: dict[str, str]


@dataclass
class ParsedManifest:
    media_type: str
    config: Descriptor
    layers: list[Descriptor]
    annotations: dict[str, str]


def _v2_document(data: bytes, *, where: str, list_key: str) -> tuple[dict[str, Any], list[Any]]:
    """An index or manifest: schemaVersion 2 and a list under ``list_key`` (not yet parsed)."""
    doc = parse_json(data, where=where)
    if doc.get("schemaVersion") != 2:
        raise FormatError("schemaVersion must be 2", where=where, field="schemaVersion")
    items = doc.get(list_key)
    if not isinstance(items, list):
        raise FormatError(f"{list_key} must be a list", where=where, field=list_key)
    return doc, items


def _descriptors(items: list[Any], *, where: str, list_key: str) -> list[Descriptor]:
    return [
        Descriptor.from_dict(item, where=where, field_name=f"{list_key}[{i}]")
        for i, item in enumerate(items)
    ]


def _annotations(doc: dict[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in (doc.get("annotations") or {}).items()}


def parse_index(data: bytes, *, where: str) -> ParsedIndex:
    doc, manifests = _v2_document(data, where=where, list_key="manifests")
    return ParsedIndex(
        media_type=str(doc.get("mediaType") or MEDIA_INDEX),
        manifests=_descriptors(manifests, where=where, list_key="manifests"),
        annotations=_annotations(doc),
    )


def parse_manifest(data: bytes, *, where: str) -> ParsedManifest:
    doc, layers = _v2_document(data, where=where, list_key="layers")
    return ParsedManifest(
        media_type=str(doc.get("mediaType") or MEDIA_MANIFEST),
        config=Descriptor.from_dict(doc.get("config"), where=where, field_name="config"),
        layers=_descriptors(layers, where=where, list_key="layers"),
        annotations=_annotations(doc),
    )


def media_type_of(data: bytes, *, where: str) -> str:
    """The mediaType of a manifest or index document (guessing from its shape if absent)."""
    doc = parse_json(data, where=where)
    media_type = doc.get("mediaType")
    if isinstance(media_type, str) and media_type:
        return media_type
    return MEDIA_INDEX if "manifests" in doc else MEDIA_MANIFEST
