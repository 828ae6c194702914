"""SPDX 2.3 JSON documents (the subset melange and apko write), pure codec.

Shape follows melange's per-package SBOM (pkg/build/sbom/spdx/spdx.go, reference §7.5) and
apko's image SBOM (§8.7): ``SPDXRef-DOCUMENT`` describing packages with purls and checksums,
and relationships between them. :func:`to_json` is deterministic (fixed key order, ``indent=2``,
trailing newline) so an SBOM inside a package never breaks reproducibility.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from nanodistro.errors import FormatError

SPDX_VERSION = "SPDX-2.3"
DATA_LICENSE = "CC0-1.0"
LICENSE_LIST_VERSION = "3.22"
NOASSERTION = "NOASSERTION"

_FNV128_OFFSET = 0x6C62272E07BB014262B821756295C58D
_FNV128_PRIME = 0x0000000001000000000000000000013B


def fnv128a_hex(text: str) -> str:
    """FNV-1a 128-bit of ``text`` as 32 hex digits (melange's documentNamespace suffix)."""
    value = _FNV128_OFFSET
    for byte in text.encode("utf-8"):
        value ^= byte
        value = (value * _FNV128_PRIME) & ((1 << 128) - 1)
    return f"{value:032x}"


def _identifier(text: str) -> str:
    # melange stringToIdentifier: ":"/"/" -> "-", [A-Za-z0-9.-] kept, others -> "C<codepoint>"
    text = text.replace(":", "-").replace("/", "-")
    return re.sub(r"[^A-Za-z0-9.\-]", lambda m: f"C{ord(m.group())}", text)


def spdx_id(*components: str) -> str:
    """``SPDXRef-Package-a-b`` from the non-empty components, sanitised as melange
    ``stringToIdentifier``: ``:``/``/`` -> ``-``, ``[A-Za-z0-9.-]`` kept, any other character ->
    ``C<codepoint>``."""
    return "SPDXRef-Package-" + _identifier("-".join(c for c in components if c))


def spdx_ref(*parts: str) -> str:
    """``SPDXRef-`` + all ``parts`` joined by ``-``, sanitised as :func:`spdx_id` (apko's image
    SBOM ids: ``spdx_ref("Package", "Image", digest)``, ``spdx_ref("OperatingSystem", id)``)."""
    return "SPDXRef-" + _identifier("-".join(parts))


@dataclass
class ExternalRef:
    category: str  # PACKAGE-MANAGER, SECURITY, ...
    type: str  # purl, cpe23Type
    locator: str


@dataclass
class Checksum:
    algorithm: str  # SHA1, SHA256, SHA512
    value: str


@dataclass
class Package:
    spdx_id: str
    name: str
    version: str = ""
    supplier: str = ""
    originator: str = ""
    download_location: str = NOASSERTION
    files_analyzed: bool = False
    license_concluded: str = NOASSERTION
    license_declared: str = NOASSERTION
    copyright_text: str = NOASSERTION
    description: str = ""
    primary_purpose: str = ""
    checksums: list[Checksum] = field(default_factory=list)
    external_refs: list[ExternalRef] = field(default_factory=list)


@dataclass
class Relationship:
    element: str
    type: str  # DESCRIBES, CONTAINS, DEPENDS_ON, GENERATED_FROM, DESCRIBED_BY
    related: str


@dataclass
class Document:
    name: str
    namespace: str
    created: str
    creators: list[str]
    describes: list[str] = field(default_factory=list)
    packages: list[Package] = field(default_factory=list)
    relationships: list[Relationship] = field(default_factory=list)
    spdx_id: str = "SPDXRef-DOCUMENT"


def _package_json(pkg: Package) -> dict[str, Any]:
    data: dict[str, Any] = {"SPDXID": pkg.spdx_id, "name": pkg.name}
    if pkg.version:
        data["versionInfo"] = pkg.version
    if pkg.supplier:
        data["supplier"] = pkg.supplier
    if pkg.originator:
        data["originator"] = pkg.originator
    data["filesAnalyzed"] = pkg.files_analyzed
    data["licenseConcluded"] = pkg.license_concluded
    data["licenseDeclared"] = pkg.license_declared
    data["downloadLocation"] = pkg.download_location
    data["copyrightText"] = pkg.copyright_text
    if pkg.description:
        data["description"] = pkg.description
    if pkg.primary_purpose:
        data["primaryPackagePurpose"] = pkg.primary_purpose
    if pkg.checksums:
        data["checksums"] = [
            {"algorithm": c.algorithm, "checksumValue": c.value} for c in pkg.checksums
        ]
    if pkg.external_refs:
        data["externalRefs"] = [
            {
                "referenceCategory": r.category,
                "referenceType": r.type,
                "referenceLocator": r.locator,
            }
            for r in pkg.external_refs
        ]
    return data


def to_dict(doc: Document) -> dict[str, Any]:
    return {
        "SPDXID": doc.spdx_id,
        "name": doc.name,
        "spdxVersion": SPDX_VERSION,
        "creationInfo": {
            "created": doc.created,
            "creators": list(doc.creators),
            "licenseListVersion": LICENSE_LIST_VERSION,
        },
        "dataLicense": DATA_LICENSE,
        "documentNamespace": doc.namespace,
        "documentDescribes": list(doc.describes),
        "packages": [_package_json(p) for p in doc.packages],
        "relationships": [
            {
                "spdxElementId": r.element,
                "relationshipType": r.type,
                "relatedSpdxElement": r.related,
            }
            for r in doc.relationships
        ],
    }


def to_json(doc: Document) -> bytes:
    """Serialize deterministically (UTF-8, indent 2, trailing newline)."""
    return dict_to_json(to_dict(doc))


def dict_to_json(data: dict[str, Any]) -> bytes:
    """An SPDX document already in its JSON shape, serialized as :func:`to_json` does."""
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _str(data: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str):
        raise FormatError(f"expected a string for {key!r}", where=where, field=key)
    return value


def from_json(raw: bytes, *, where: str = "<sbom>") -> Document:
    """Parse an SPDX 2.x JSON document (unknown fields are ignored)."""
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise FormatError(f"not JSON: {error}", where=where) from None
    if not isinstance(data, dict) or not str(data.get("spdxVersion", "")).startswith("SPDX-2."):
        raise FormatError("not an SPDX 2.x JSON document (spdxVersion)", where=where)
    info = data.get("creationInfo") or {}
    packages: list[Package] = []
    for index, item in enumerate(data.get("packages") or []):
        if not isinstance(item, dict):
            raise FormatError("package must be an object", where=where, field=f"packages[{index}]")
        packages.append(
            Package(
                spdx_id=_str(item, "SPDXID", where),
                name=_str(item, "name", where, ""),
                version=_str(item, "versionInfo", where, ""),
                supplier=_str(item, "supplier", where, ""),
                originator=_str(item, "originator", where, ""),
                download_location=_str(item, "downloadLocation", where, NOASSERTION),
                files_analyzed=bool(item.get("filesAnalyzed", False)),
                license_concluded=_str(item, "licenseConcluded", where, NOASSERTION),
                license_declared=_str(item, "licenseDeclared", where, NOASSERTION),
                copyright_text=_str(item, "copyrightText", where, NOASSERTION),
                description=_str(item, "description", where, ""),
                primary_purpose=_str(item, "primaryPackagePurpose", where, ""),
                checksums=[
                    Checksum(str(c.get("algorithm", "")), str(c.get("checksumValue", "")))
                    for c in item.get("checksums") or []
                ],
                external_refs=[
                    ExternalRef(
                        str(r.get("referenceCategory", "")),
                        str(r.get("referenceType", "")),
                        str(r.get("referenceLocator", "")),
                    )
                    for r in item.get("externalRefs") or []
                ],
            )
        )
    return Document(
        name=_str(data, "name", where, ""),
        namespace=_str(data, "documentNamespace", where, ""),
        created=str(info.get("created", "")),
        creators=[str(c) for c in info.get("creators") or []],
        describes=[str(d) for d in data.get("documentDescribes") or []],
        packages=packages,
        relationships=[
            Relationship(
                str(r.get("spdxElementId", "")),
                str(r.get("relationshipType", "")),
                str(r.get("relatedSpdxElement", "")),
            )
            for r in data.get("relationships") or []
        ],
        spdx_id=_str(data, "SPDXID", where, "SPDXRef-DOCUMENT"),
    )
