"""OpenVEX 0.2.0 documents (openvex/spec OPENVEX-SPEC.md; reference/security.md §3.1): encode
in go-vex's field order, decode with the checks a consumer needs (status values, required
fields). ``@id`` is derived from the content by the caller so the same input gives the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from nanodistro.errors import FormatError
from nanodistro.formats.gojson import go_json

__all__ = [
    "CONTEXT",
    "JUSTIFICATIONS",
    "STATUSES",
    "VexDocument",
    "VexStatement",
    "decode_openvex",
    "encode_openvex",
]

CONTEXT = "https://openvex.dev/ns/v0.2.0"
STATUSES = ("not_affected", "affected", "fixed", "under_investigation")
JUSTIFICATIONS = (
    "component_not_present",
    "vulnerable_code_not_present",
    "vulnerable_code_not_in_execute_path",
    "vulnerable_code_cannot_be_controlled_by_adversary",
    "inline_mitigations_already_exist",
)


@dataclass(frozen=True)
class VexStatement:
    vulnerability: str
    status: str
    products: Sequence[str]  # product @ids (purls)
    aliases: Sequence[str] = ()
    timestamp: str = ""
    status_notes: str = ""
    justification: str = ""
    impact_statement: str = ""
    action_statement: str = ""


@dataclass(frozen=True)
class VexDocument:
    id: str
    author: str
    timestamp: str
    statements: Sequence[VexStatement] = field(default_factory=list)
    version: int = 1
    tooling: str = ""
    role: str = ""


def _statement(st: VexStatement) -> dict[str, Any]:
    vuln: dict[str, Any] = {"name": st.vulnerability}
    if st.aliases:
        vuln["aliases"] = list(st.aliases)
    out: dict[str, Any] = {"vulnerability": vuln}
    if st.timestamp:
        out["timestamp"] = st.timestamp
    out["products"] = [{"@id": product} for product in st.products]
    out["status"] = st.status
    for key in ("status_notes", "justification", "impact_statement", "action_statement"):
        if getattr(st, key):
            out[key] = getattr(st, key)
    return out


def encode_openvex(doc: VexDocument) -> bytes:
    out: dict[str, Any] = {"@context": CONTEXT, "@id": doc.id, "author": doc.author}
    if doc.role:
        out["role"] = doc.role
    out["timestamp"] = doc.timestamp
    out["version"] = doc.version
    if doc.tooling:
        out["tooling"] = doc.tooling
    out["statements"] = [_statement(st) for st in doc.statements]
    return go_json(out, final_newline=True)


def decode_openvex(data: bytes, where: str = "<openvex>") -> VexDocument:
    try:
        raw = json.loads(data)
    except ValueError as error:
        raise FormatError(f"invalid JSON ({error})", where=where) from None
    if not isinstance(raw, dict):
        raise FormatError("expected a JSON object", where=where)
    for key in ("@context", "@id", "author", "timestamp", "version", "statements"):
        if key not in raw:
            raise FormatError(f"missing required field {key!r}", where=where, field=key)
    statements = []
    for index, item in enumerate(raw["statements"]):
        path = f"statements[{index}]"
        if not isinstance(item, dict) or "vulnerability" not in item or "status" not in item:
            raise FormatError("a statement needs vulnerability and status", where=where, field=path)
        if item["status"] not in STATUSES:
            raise FormatError(
                f"status {item['status']!r} is not one of {', '.join(STATUSES)}",
                where=where,
                field=f"{path}.status",
            )
        vuln = item["vulnerability"]
        statements.append(
            VexStatement(
                vulnerability=str(vuln.get("name", "")),
                aliases=[str(a) for a in vuln.get("aliases", [])],
                status=str(item["status"]),
                products=[str(p.get("@id", "")) for p in item.get("products", [])],
                timestamp=str(item.get("timestamp", "")),
                status_notes=str(item.get("status_notes", "")),
                justification=str(item.get("justification", "")),
                impact_statement=str(item.get("impact_statement", "")),
                action_statement=str(item.get("action_statement", "")),
            )
        )
    return VexDocument(
        id=str(raw["@id"]),
        author=str(raw["author"]),
        timestamp=str(raw["timestamp"]),
        statements=statements,
        version=int(raw["version"]),
        tooling=str(raw.get("tooling", "")),
        role=str(raw.get("role", "")),
    )
