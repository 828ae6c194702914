"""in-toto Statement v1 and the SLSA Provenance v1 predicate: build, serialise, parse.

Specs: in-toto/attestation ``spec/v1/statement.md``, ``resource_descriptor.md``,
``digest_set.md`` (protos ``in_toto_attestation/v1/*.proto``) and slsa-framework/slsa
``docs/spec/v1.0/schema/provenance.proto`` (predicate type ``https://slsa.dev/provenance/v1``).

A statement is serialised with sorted keys and no whitespace, so the same statement always gives
the same bytes (the DSSE signature covers these bytes, ``formats/dsse.py``). Parsing checks the
structure the specs require and names the field that is wrong; it does not check signatures.
This module is a codec: no I/O, no clock (times are given).
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nanodistro.errors import FormatError

__all__ = [
    "SLSA_PROVENANCE_V1",
    "STATEMENT_TYPE",
    "Provenance",
    "ResourceDescriptor",
    "Statement",
    "format_time",
    "parse_provenance",
    "parse_statement",
    "provenance_statement",
]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"

# digest_set.md: these algorithm names carry lowercase hex values (git* ones hex object ids).
_HEX_ALGORITHMS = frozenset(
    {
        "sha256",
        "sha224",
        "sha384",
        "sha512",
        "sha512_224",
        "sha512_256",
        "sha3_224",
        "sha3_256",
        "sha3_384",
        "sha3_512",
        "sha1",
        "md5",
        "gitCommit",
        "gitTree",
        "gitBlob",
        "gitTag",
    }
)
_HEX = re.compile(r"^[0-9a-f]+$")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def format_time(moment: datetime.datetime) -> str:
    """RFC 3339 UTC with a ``Z`` and whole seconds (what the SLSA schema's #Timestamp shows)."""
    if moment.tzinfo is None:
        raise FormatError("provenance times must be timezone-aware")
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


# ------------------------------------------------------------------------- resource descriptor


@dataclass(frozen=True)
class ResourceDescriptor:
    """An artifact or resource: at least one of ``uri`` and ``digest`` (``content`` unused)."""

    name: str = ""
    uri: str = ""
    digest: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, Any] = field(default_factory=dict)
    download_location: str = ""
    media_type: str = ""

    def to_json(self) -> dict[str, Any]:
        """Empty fields are left out (proto3 JSON omits defaults)."""
        out: dict[str, Any] = {}
        if self.name:
            out["name"] = self.name
        if self.uri:
            out["uri"] = self.uri
        if self.digest:
            out["digest"] = dict(self.digest)
        if self.download_location:
            out["downloadLocation"] = self.download_location
        if self.media_type:
            out["mediaType"] = self.media_type
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    @classmethod
    def from_json(cls, value: object, *, where: str, path: str) -> ResourceDescriptor:
        if not isinstance(value, dict):
            raise FormatError("expected a ResourceDescriptor object", where=where, field=path)
        strings: dict[str, str] = {}
        for key in ("name", "uri", "downloadLocation", "mediaType"):
            item = value.get(key, "")
            if not isinstance(item, str):
                raise FormatError("expected a string", where=where, field=f"{path}.{key}")
            strings[key] = item
        digest = _digest_set(value.get("digest", {}), where=where, path=f"{path}.digest")
        if "content" in value and not isinstance(value["content"], str):
            raise FormatError("expected base64 text", where=where, field=f"{path}.content")
        if not strings["uri"] and not digest and "content" not in value:
            raise FormatError(
                "a ResourceDescriptor needs at least one of uri, digest, content",
                where=where,
                field=path,
            )
        annotations = value.get("annotations", {})
        if not isinstance(annotations, dict):
            raise FormatError("expected an object", where=where, field=f"{path}.annotations")
        return cls(
            name=strings["name"],
            uri=strings["uri"],
            digest=digest,
            annotations=annotations,
            download_location=strings["downloadLocation"],
            media_type=strings["mediaType"],
        )


def _digest_set(value: object, *, where: str, path: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise FormatError(
            "expected a digest set object (algorithm -> value)", where=where, field=path
        )
    out: dict[str, str] = {}
    for algorithm, digest in value.items():
        if not isinstance(digest, str) or not digest:
            raise FormatError(
                "expected a non-empty string", where=where, field=f"{path}.{algorithm}"
            )
        if algorithm in _HEX_ALGORITHMS and not _HEX.match(digest):
            raise FormatError(
                f"expected lowercase hex, got {digest!r}", where=where, field=f"{path}.{algorithm}"
            )
        out[str(algorithm)] = digest
    return out


# ------------------------------------------------------------------------------ statement


@dataclass(frozen=True)
class Statement:
    subject: tuple[ResourceDescriptor, ...]
    predicate_type: str
    predicate: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "_type": STATEMENT_TYPE,
            "subject": [
                {"name": s.name, "digest": dict(s.digest)} if s.name else {"digest": dict(s.digest)}
                for s in self.subject
            ],
            "predicateType": self.predicate_type,
            "predicate": dict(self.predicate),
        }

    def to_bytes(self) -> bytes:
        """Sorted keys, no whitespace: the same statement always gives the same bytes."""
        return _canonical(self.to_json())

    def digests(self) -> list[tuple[str, Mapping[str, str]]]:
        return [(s.name, s.digest) for s in self.subject]


def parse_statement(data: bytes | Mapping[str, Any], *, where: str = "statement") -> Statement:
    """A statement from its JSON bytes (or the decoded object); errors name the field."""
    if isinstance(data, bytes | bytearray):
        try:
            value: Any = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise FormatError(
                f"not an in-toto statement: invalid JSON ({error})", where=where
            ) from None
    else:
        value = data
    if not isinstance(value, Mapping):
        raise FormatError("not an in-toto statement: expected a JSON object", where=where)
    if value.get("_type") != STATEMENT_TYPE:
        raise FormatError(
            f"expected {STATEMENT_TYPE!r}, got {value.get('_type')!r}", where=where, field="_type"
        )
    subjects = value.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise FormatError("expected a non-empty list", where=where, field="subject")
    parsed = []
    for index, raw in enumerate(subjects):
        item = ResourceDescriptor.from_json(raw, where=where, path=f"subject[{index}]")
        if not item.digest:  # statement.md: each subject MUST have digest set
            raise FormatError(
                "a subject must have a digest", where=where, field=f"subject[{index}]"
            )
        parsed.append(item)
    predicate_type = value.get("predicateType")
    if not isinstance(predicate_type, str) or not predicate_type:
        raise FormatError("expected a URI", where=where, field="predicateType")
    predicate = value.get("predicate", {})
    if not isinstance(predicate, dict):
        raise FormatError("expected an object", where=where, field="predicate")
    return Statement(tuple(parsed), predicate_type, predicate)


# ------------------------------------------------------------------------ SLSA provenance v1


@dataclass(frozen=True)
class Provenance:
    """The SLSA Provenance v1 predicate (``buildDefinition`` + ``runDetails``)."""

    build_type: str
    builder_id: str
    external_parameters: Mapping[str, Any] = field(default_factory=dict)
    internal_parameters: Mapping[str, Any] = field(default_factory=dict)
    resolved_dependencies: tuple[ResourceDescriptor, ...] = ()
    builder_version: Mapping[str, str] = field(default_factory=dict)
    invocation_id: str = ""
    started_on: str = ""  # RFC 3339 (format_time)
    finished_on: str = ""
    byproducts: tuple[ResourceDescriptor, ...] = ()

    def build_definition(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "buildType": self.build_type,
            "externalParameters": dict(self.external_parameters),
        }
        if self.internal_parameters:
            out["internalParameters"] = dict(self.internal_parameters)
        if self.resolved_dependencies:
            out["resolvedDependencies"] = [d.to_json() for d in self.resolved_dependencies]
        return out

    def to_json(self) -> dict[str, Any]:
        builder: dict[str, Any] = {"id": self.builder_id}
        if self.builder_version:
            builder["version"] = dict(self.builder_version)
        metadata = {
            key: value
            for key, value in (
                ("invocationId", self.invocation_id),
                ("startedOn", self.started_on),
                ("finishedOn", self.finished_on),
            )
            if value
        }
        run: dict[str, Any] = {"builder": builder}
        if metadata:
            run["metadata"] = metadata
        if self.byproducts:
            run["byproducts"] = [b.to_json() for b in self.byproducts]
        return {"buildDefinition": self.build_definition(), "runDetails": run}

    def dependency(self, name: str) -> ResourceDescriptor | None:
        return next((d for d in self.resolved_dependencies if d.name == name), None)


def provenance_statement(
    subjects: Sequence[ResourceDescriptor], provenance: Provenance
) -> Statement:
    """A statement with a SLSA Provenance v1 predicate about ``subjects`` (each with a digest)."""
    if not subjects:
        raise FormatError("a provenance statement needs at least one subject")
    for subject in subjects:
        if not subject.digest:
            raise FormatError(f"subject {subject.name!r} has no digest")
    return Statement(tuple(subjects), SLSA_PROVENANCE_V1, provenance.to_json())


def _object(value: object, *, where: str, path: str, required: bool = False) -> dict[str, Any]:
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise FormatError("expected an object", where=where, field=path)
    return value


def _string(value: object, *, where: str, path: str, required: bool = False) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise FormatError(
            "expected a non-empty string" if required else "expected a string",
            where=where,
            field=path,
        )
    return value


def _descriptors(value: object, *, where: str, path: str) -> tuple[ResourceDescriptor, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise FormatError("expected a list of ResourceDescriptors", where=where, field=path)
    return tuple(
        ResourceDescriptor.from_json(item, where=where, path=f"{path}[{i}]")
        for i, item in enumerate(value)
    )


def _time(value: object, *, where: str, path: str) -> str:
    text = _string(value, where=where, path=path)
    if text and not _TIME.match(text):
        raise FormatError(f"expected an RFC 3339 time, got {text!r}", where=where, field=path)
    return text


def parse_provenance(statement: Statement, *, where: str = "statement") -> Provenance:
    """The SLSA v1 predicate of ``statement``; its predicateType must be SLSA provenance v1."""
    if statement.predicate_type != SLSA_PROVENANCE_V1:
        raise FormatError(
            f"expected {SLSA_PROVENANCE_V1!r}, got {statement.predicate_type!r}",
            where=where,
            field="predicateType",
        )
    p = "predicate"
    predicate = statement.predicate
    definition = _object(
        predicate.get("buildDefinition"), where=where, path=f"{p}.buildDefinition", required=True
    )
    run = _object(predicate.get("runDetails"), where=where, path=f"{p}.runDetails", required=True)
    d, r = f"{p}.buildDefinition", f"{p}.runDetails"
    builder = _object(run.get("builder"), where=where, path=f"{r}.builder", required=True)
    version = _object(builder.get("version"), where=where, path=f"{r}.builder.version")
    for key, item in version.items():
        _string(item, where=where, path=f"{r}.builder.version.{key}", required=True)
    metadata = _object(run.get("metadata"), where=where, path=f"{r}.metadata")
    return Provenance(
        build_type=_string(
            definition.get("buildType"), where=where, path=f"{d}.buildType", required=True
        ),
        builder_id=_string(builder.get("id"), where=where, path=f"{r}.builder.id", required=True),
        external_parameters=_object(
            definition.get("externalParameters"),
            where=where,
            path=f"{d}.externalParameters",
            required=True,
        ),
        internal_parameters=_object(
            definition.get("internalParameters"), where=where, path=f"{d}.internalParameters"
        ),
        resolved_dependencies=_descriptors(
            definition.get("resolvedDependencies"), where=where, path=f"{d}.resolvedDependencies"
        ),
        builder_version=version,
        invocation_id=_string(
            metadata.get("invocationId"), where=where, path=f"{r}.metadata.invocationId"
        ),
        started_on=_time(metadata.get("startedOn"), where=where, path=f"{r}.metadata.startedOn"),
        finished_on=_time(metadata.get("finishedOn"), where=where, path=f"{r}.metadata.finishedOn"),
        byproducts=_descriptors(run.get("byproducts"), where=where, path=f"{r}.byproducts"),
    )
