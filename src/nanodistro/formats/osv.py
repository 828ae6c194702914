"""OSV vulnerability records (https://ossf.github.io/osv-schema/, schema 1.x): the reader.

Bytes in, :class:`OsvRecord` out; the scanner (``vuln/``) matches them. Every field the matcher
uses is checked with an error naming the record and field; fields it does not use are kept
verbatim in ``raw`` so nothing is lost. H5 (feeds) adds the writer for our own records here.

Shapes (reference/security.md §2.3, §2.4, and the OSV schema):
- ``id`` (required), ``modified``, ``published``, ``withdrawn``, ``aliases``, ``related`` and
  Chainguard's ``upstream`` (CVE/GHSA ids of a CGA record sit there, not in ``aliases``);
- ``severity[{type: CVSS_V2|CVSS_V3|CVSS_V4|Ubuntu, score}]`` and
  ``database_specific.severity`` (GHSA: LOW/MODERATE/HIGH/CRITICAL);
- ``affected[{package{ecosystem, name, purl}, ranges[{type: ECOSYSTEM|SEMVER|GIT, repo,
  events[{introduced|fixed|last_affected|limit: value}]}], versions[], database_specific,
  ecosystem_specific}]``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from nanodistro.errors import FormatError

__all__ = [
    "EVENT_KINDS",
    "RANGE_TYPES",
    "Affected",
    "Event",
    "OsvPackage",
    "OsvRecord",
    "Range",
    "Severity",
    "parse_record",
    "record_from_dict",
]

EventKind = Literal["introduced", "fixed", "last_affected", "limit"]
EVENT_KINDS: tuple[EventKind, ...] = ("introduced", "fixed", "last_affected", "limit")
RANGE_TYPES = ("ECOSYSTEM", "SEMVER", "GIT")


@dataclass(frozen=True)
class Event:
    kind: EventKind
    value: str


@dataclass(frozen=True)
class Range:
    type: str  # ECOSYSTEM | SEMVER | GIT
    events: tuple[Event, ...]
    repo: str = ""  # GIT only


@dataclass(frozen=True)
class OsvPackage:
    ecosystem: str  # "PyPI", "npm", "Go", "Wolfi", "Alpine:v3.18", ... ("" for GIT-only records)
    name: str
    purl: str = ""


@dataclass(frozen=True)
class Affected:
    package: OsvPackage | None
    ranges: tuple[Range, ...] = ()
    versions: tuple[str, ...] = ()
    database_specific: dict[str, Any] = field(default_factory=dict)
    ecosystem_specific: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Severity:
    type: str
    score: str


@dataclass(frozen=True)
class OsvRecord:
    id: str
    modified: str = ""
    published: str = ""
    withdrawn: str = ""
    summary: str = ""
    details: str = ""
    aliases: tuple[str, ...] = ()
    related: tuple[str, ...] = ()
    upstream: tuple[str, ...] = ()
    severity: tuple[Severity, ...] = ()
    affected: tuple[Affected, ...] = ()
    references: tuple[dict[str, str], ...] = ()
    database_specific: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def ids(self) -> frozenset[str]:
        """Every id a finding of this record may be known by (id, aliases, upstream)."""
        return frozenset({self.id, *self.aliases, *self.upstream})

    @property
    def advisory_url(self) -> str:
        """The first ADVISORY reference, else the first reference ("" when none)."""
        urls = [r.get("url", "") for r in self.references if r.get("type") == "ADVISORY"]
        urls += [r.get("url", "") for r in self.references]
        return next((url for url in urls if url), "")


def _str(value: Any, where: str, field_name: str, *, required: bool = False) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise FormatError("expected a non-empty string", where=where, field=field_name)
    return value


def _str_list(value: Any, where: str, field_name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise FormatError("expected a list of strings", where=where, field=field_name)
    return tuple(value)


def _dict(value: Any, where: str, field_name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FormatError("expected an object", where=where, field=field_name)
    return value


def _list(value: Any, where: str, field_name: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise FormatError("expected a list", where=where, field=field_name)
    return value


def _event(item: Any, where: str, field_name: str) -> Event:
    data = _dict(item, where, field_name)
    keys = [k for k in data if k in EVENT_KINDS]
    if len(keys) != 1:
        raise FormatError(
            f"expected exactly one of {', '.join(EVENT_KINDS)}, got {sorted(data)}",
            where=where,
            field=field_name,
        )
    kind = keys[0]
    return Event(kind, _str(data[kind], where, f"{field_name}.{kind}", required=True))


def _range(item: Any, where: str, field_name: str) -> Range:
    data = _dict(item, where, field_name)
    kind = _str(data.get("type"), where, f"{field_name}.type", required=True)
    if kind not in RANGE_TYPES:
        raise FormatError(
            f"expected one of {', '.join(RANGE_TYPES)}, got {kind!r}",
            where=where,
            field=f"{field_name}.type",
        )
    events = tuple(
        _event(event, where, f"{field_name}.events[{index}]")
        for index, event in enumerate(_list(data.get("events"), where, f"{field_name}.events"))
    )
    if not events:
        raise FormatError("expected at least one event", where=where, field=f"{field_name}.events")
    repo = _str(data.get("repo"), where, f"{field_name}.repo")
    if kind == "GIT" and not repo:
        raise FormatError("a GIT range needs 'repo'", where=where, field=f"{field_name}.repo")
    return Range(kind, events, repo)


def _affected(item: Any, where: str, field_name: str) -> Affected:
    data = _dict(item, where, field_name)
    package = None
    if data.get("package") is not None:
        pkg = _dict(data["package"], where, f"{field_name}.package")
        package = OsvPackage(
            ecosystem=_str(pkg.get("ecosystem"), where, f"{field_name}.package.ecosystem"),
            name=_str(pkg.get("name"), where, f"{field_name}.package.name"),
            purl=_str(pkg.get("purl"), where, f"{field_name}.package.purl"),
        )
        if not package.name and not package.purl:
            raise FormatError(
                "a package needs 'name' or 'purl'", where=where, field=f"{field_name}.package"
            )
    ranges = tuple(
        _range(r, where, f"{field_name}.ranges[{index}]")
        for index, r in enumerate(_list(data.get("ranges"), where, f"{field_name}.ranges"))
    )
    return Affected(
        package=package,
        ranges=ranges,
        versions=_str_list(data.get("versions"), where, f"{field_name}.versions"),
        database_specific=_dict(
            data.get("database_specific"), where, f"{field_name}.database_specific"
        ),
        ecosystem_specific=_dict(
            data.get("ecosystem_specific"), where, f"{field_name}.ecosystem_specific"
        ),
    )


def record_from_dict(data: Any, *, where: str) -> OsvRecord:
    """An OSV record from decoded JSON; ``FormatError`` naming ``where`` and the field."""
    if not isinstance(data, dict):
        raise FormatError("expected a JSON object (an OSV record)", where=where)
    record_id = _str(data.get("id"), where, "id", required=True)
    where = f"{where} ({record_id})" if record_id not in where else where
    severity: list[Severity] = []
    for index, item in enumerate(_list(data.get("severity"), where, "severity")):
        entry = _dict(item, where, f"severity[{index}]")
        severity.append(
            Severity(
                _str(entry.get("type"), where, f"severity[{index}].type", required=True),
                _str(entry.get("score"), where, f"severity[{index}].score", required=True),
            )
        )
    references = []
    for index, item in enumerate(_list(data.get("references"), where, "references")):
        ref = _dict(item, where, f"references[{index}]")
        references.append({k: v for k, v in ref.items() if isinstance(v, str)})
    return OsvRecord(
        id=record_id,
        modified=_str(data.get("modified"), where, "modified"),
        published=_str(data.get("published"), where, "published"),
        withdrawn=_str(data.get("withdrawn"), where, "withdrawn"),
        summary=_str(data.get("summary"), where, "summary"),
        details=_str(data.get("details"), where, "details"),
        aliases=_str_list(data.get("aliases"), where, "aliases"),
        related=_str_list(data.get("related"), where, "related"),
        upstream=_str_list(data.get("upstream"), where, "upstream"),
        severity=tuple(severity),
        affected=tuple(
            _affected(item, where, f"affected[{index}]")
            for index, item in enumerate(_list(data.get("affected"), where, "affected"))
        ),
        references=tuple(references),
        database_specific=_dict(data.get("database_specific"), where, "database_specific"),
        raw=data,
    )


def parse_record(data: bytes, *, where: str) -> OsvRecord:
    """One OSV record from JSON bytes."""
    try:
        decoded = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise FormatError(f"not JSON: {error}", where=where) from None
    return record_from_dict(decoded, where=where)
