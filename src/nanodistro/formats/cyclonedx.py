"""CycloneDX 1.6 JSON documents (the subset nanodistro writes), pure codec.

A :class:`Bom` names what it describes (``metadata.component``: a package or an image), its
components (installed packages, the operating system) with ``bom-ref`` (their purl), licenses as
SPDX expressions, hashes and the sources they were built from (``pedigree.ancestors``), and the
dependency graph between them. :func:`to_json` is deterministic: fixed key order, ``indent=2``,
trailing newline, and a ``serialNumber`` derived from the rest of the document (a UUID v5 of its
bytes), so the same inputs give the same file and any change gives another serial number.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from nanodistro.errors import FormatError

SPEC_VERSION = "1.6"
SCHEMA_URL = "http://cyclonedx.org/schema/bom-1.6.schema.json"
MEDIA_TYPE = "application/vnd.cyclonedx+json"
# The UUID v5 namespace of serial numbers (uuid5(NAMESPACE_URL, "https://nanodistro.dev/cyclonedx")).
SERIAL_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://nanodistro.dev/cyclonedx")
NOASSERTION = "NOASSERTION"

# SPDX checksum algorithm names -> CycloneDX hash-alg names.
HASH_ALGORITHMS = {
    "SHA1": "SHA-1",
    "SHA256": "SHA-256",
    "SHA384": "SHA-384",
    "SHA512": "SHA-512",
    "MD5": "MD5",
}

# One token of an SPDX license expression: an identifier (LicenseRef-/DocumentRef- included,
# optional "+"), an operator or a parenthesis.
_LICENSE_TOKEN = re.compile(r"\s*(\(|\)|[A-Za-z0-9.\-:]+\+?)")
_OPERATORS = {"AND", "OR", "WITH"}


@dataclass
class Hash:
    alg: str  # CycloneDX name: SHA-256, SHA-512, SHA-1
    content: str  # lowercase hex


@dataclass
class Component:
    type: str  # library, application, operating-system, container, file
    name: str
    bom_ref: str = ""
    version: str = ""
    supplier: str = ""  # organization name
    description: str = ""
    licenses: str = ""  # an SPDX expression; a non-expression text becomes a named license
    purl: str = ""
    hashes: list[Hash] = field(default_factory=list)
    external_refs: list[tuple[str, str]] = field(default_factory=list)  # (type, url)
    ancestors: list[Component] = field(default_factory=list)  # pedigree: built from these
    properties: list[tuple[str, str]] = field(default_factory=list)  # (name, value)


@dataclass
class Bom:
    component: Component  # what the document describes (metadata.component)
    timestamp: str  # RFC 3339, from SOURCE_DATE_EPOCH
    tools: list[tuple[str, str]] = field(default_factory=list)  # (name, version)
    components: list[Component] = field(default_factory=list)
    dependencies: dict[str, list[str]] = field(default_factory=dict)  # bom-ref -> depends on
    properties: list[tuple[str, str]] = field(default_factory=list)


def is_license_expression(text: str) -> bool:
    """Whether ``text`` parses as an SPDX license expression (identifiers joined by AND/OR/WITH,
    parentheses balanced); ``NOASSERTION``/``NONE`` are not license data."""
    if not text.strip() or text.strip() in (NOASSERTION, "NONE"):
        return False
    tokens: list[str] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _LICENSE_TOKEN.match(text, position)
        if match is None:
            return False
        tokens.append(match.group(1))
        position = match.end()
    depth = 0
    expect_operand = True
    for token in tokens:
        if token == "(":
            if not expect_operand:
                return False
            depth += 1
        elif token == ")":
            if expect_operand or depth == 0:
                return False
            depth -= 1
        elif token in _OPERATORS:
            if expect_operand:
                return False
            expect_operand = True
        else:
            if not expect_operand:
                return False
            expect_operand = False
    return depth == 0 and not expect_operand


def _licenses_json(text: str) -> list[dict[str, Any]]:
    text = " ".join(text.split())
    if not text or text in (NOASSERTION, "NONE"):
        return []
    if is_license_expression(text):
        return [{"expression": text}]
    return [{"license": {"name": text}}]


def _component_json(component: Component, *, with_ref: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {"type": component.type}
    if with_ref and component.bom_ref:
        data["bom-ref"] = component.bom_ref
    if component.supplier:
        data["supplier"] = {"name": component.supplier}
    data["name"] = component.name
    if component.version:
        data["version"] = component.version
    if component.description:
        data["description"] = component.description
    if component.hashes:
        data["hashes"] = [{"alg": h.alg, "content": h.content} for h in component.hashes]
    licenses = _licenses_json(component.licenses)
    if licenses:
        data["licenses"] = licenses
    if component.purl:
        data["purl"] = component.purl
    if component.ancestors:
        # ancestors are copies, not BOM elements: without bom-ref, so two packages built from
        # one source never repeat a reference
        data["pedigree"] = {
            "ancestors": [_component_json(a, with_ref=False) for a in component.ancestors]
        }
    if component.external_refs:
        data["externalReferences"] = [
            {"type": kind, "url": url} for kind, url in component.external_refs
        ]
    if component.properties:
        data["properties"] = [{"name": n, "value": v} for n, v in component.properties]
    return data


def to_dict(bom: Bom) -> dict[str, Any]:
    """The document as JSON data, ``serialNumber`` included."""
    refs = [bom.component.bom_ref, *(c.bom_ref for c in bom.components)]
    duplicates = sorted({r for r in refs if r and refs.count(r) > 1})
    if duplicates:
        raise FormatError(f"bom-ref used twice: {', '.join(duplicates)}", field="bom-ref")
    unknown = sorted(
        {r for ref, deps in bom.dependencies.items() for r in (ref, *deps) if r not in refs}
    )
    if unknown:
        raise FormatError(
            f"dependencies name unknown bom-refs: {', '.join(unknown)}", field="dependencies"
        )
    metadata: dict[str, Any] = {"timestamp": bom.timestamp}
    if bom.tools:
        metadata["tools"] = {
            "components": [
                {"type": "application", "name": name, "version": version}
                for name, version in bom.tools
            ]
        }
    metadata["component"] = _component_json(bom.component)
    if bom.properties:
        metadata["properties"] = [{"name": n, "value": v} for n, v in bom.properties]
    body: dict[str, Any] = {
        "$schema": SCHEMA_URL,
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": "",
        "version": 1,
        "metadata": metadata,
        "components": [_component_json(c) for c in bom.components],
        "dependencies": [
            {"ref": ref, "dependsOn": sorted(set(deps))}
            for ref, deps in sorted(bom.dependencies.items())
        ],
    }
    body["serialNumber"] = serial_number(body)
    return body


def serial_number(body: dict[str, Any]) -> str:
    """``urn:uuid:`` + UUID v5 of the document without its serial number: the same content
    always gets the same serial number, different content another."""
    content = {k: v for k, v in body.items() if k != "serialNumber"}
    text = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return f"urn:uuid:{uuid.uuid5(SERIAL_NAMESPACE, text)}"


def to_json(bom: Bom) -> bytes:
    """Serialize deterministically (UTF-8, indent 2, trailing newline)."""
    return dict_to_json(to_dict(bom))


def dict_to_json(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def from_json(raw: bytes, *, where: str = "<bom>") -> dict[str, Any]:
    """A CycloneDX JSON document as data, after checking it is one (format and version 1.x)."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise FormatError(f"not JSON: {error}", where=where) from None
    if not isinstance(data, dict) or data.get("bomFormat") != "CycloneDX":
        raise FormatError("not a CycloneDX JSON document (bomFormat)", where=where)
    if not str(data.get("specVersion", "")).startswith("1."):
        raise FormatError(
            f"unsupported CycloneDX specVersion {data.get('specVersion')!r}",
            where=where,
            field="specVersion",
        )
    return data


def component_purls(data: dict[str, Any]) -> list[str]:
    """The purls of a parsed document's components (not of metadata.component), in order."""
    return [
        str(c["purl"])
        for c in data.get("components") or []
        if isinstance(c, dict) and isinstance(c.get("purl"), str)
    ]
