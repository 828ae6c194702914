"""OSV records for our own advisories, in the shape wolfictl's ``advisory osv`` wrote
(reference/security.md §2.3): key order ``modified, id, related, affected``, Go ``json.Encoder``
output (two-space indent, final newline), one ``<ID>.json`` per advisory plus ``all.json``
(``[{modified, id}]`` sorted by ID). The reader is ``formats/osv.py`` (the scanner's side).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nanodistro.formats.gojson import go_json

__all__ = ["OsvAdvisory", "OsvAffected", "encode_index", "encode_record", "record_dict"]


@dataclass(frozen=True)
class OsvAffected:
    ecosystem: str
    name: str
    purl: str
    fixed: str  # the fixed version; "0" with false_positive for a false-positive determination
    false_positive: bool = False


@dataclass(frozen=True)
class OsvAdvisory:
    id: str
    modified: str  # RFC 3339, UTC
    related: Sequence[str]
    affected: Sequence[OsvAffected]


def record_dict(record: OsvAdvisory) -> dict[str, Any]:
    affected = []
    for item in record.affected:
        range_: dict[str, Any] = {
            "type": "ECOSYSTEM",
            "events": [{"introduced": "0"}, {"fixed": item.fixed}],
        }
        if item.false_positive:
            range_["database_specific"] = {"false_positive": True}
        affected.append(
            {
                "package": {"ecosystem": item.ecosystem, "name": item.name, "purl": item.purl},
                "ranges": [range_],
            }
        )
    out: dict[str, Any] = {"modified": record.modified, "id": record.id}
    if record.related:
        out["related"] = list(record.related)
    if affected:
        out["affected"] = affected
    return out


def encode_record(record: OsvAdvisory) -> bytes:
    return go_json(record_dict(record), final_newline=True)


def encode_index(records: Sequence[OsvAdvisory]) -> bytes:
    entries = [{"modified": r.modified, "id": r.id} for r in sorted(records, key=lambda r: r.id)]
    return go_json(entries, final_newline=True)
