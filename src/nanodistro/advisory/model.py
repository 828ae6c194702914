"""Wolfi advisory documents, schema 2.0.2 (chainguard-dev/advisory-schema ``pkg/advisory/v2``;
reference/security.md §1): the data, the constants of the schema and the derived semantics
(``Latest()``, ``Resolved()``) exactly as the Go code defines them.

A :class:`Document` keeps the YAML it was read from (``source``), so writing it back is
byte-identical and an update changes only what it adds (``advisory/document.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nanodistro.errors import AdvisoryError

__all__ = [
    "ADVISORY_ID",
    "ALIAS_PATTERNS",
    "DETECTION_TYPES",
    "EVENT_TYPES",
    "FIXED_VERSION",
    "FP_JUSTIFICATION",
    "FP_TYPES",
    "NOTE_REQUIRED",
    "SCANNERS",
    "SCHEMA_VERSION",
    "Advisory",
    "Detection",
    "Document",
    "Event",
    "FalsePositive",
    "Fixed",
    "NoteData",
    "NvdApiDetection",
    "ScanV1Detection",
    "TruePositive",
    "document_file_name",
    "line_of",
]

SCHEMA_VERSION = "2.0.2"  # what we write; newer documents and MAJOR < 2 are refused

# IDs (pkg/advisory/cga_id.go, pkg/vuln/id.go).
CGA_ALPHABET = "23456789cfghjmpqrvwx"
ADVISORY_ID = re.compile(rf"^CGA(-[{CGA_ALPHABET}]{{4}}){{3}}$")
ALIAS_PATTERNS = {
    "CVE": re.compile(r"^CVE-\d{4}-\d{4,}$"),
    "GHSA": re.compile(rf"^GHSA(-[{CGA_ALPHABET}]{{4}}){{3}}$"),
    "GO": re.compile(r"^GO-\d{4}-\d{4}$"),
}

EVENT_TYPES = (
    "detection",
    "true-positive-determination",
    "fixed",
    "false-positive-determination",
    "analysis-not-planned",
    "fix-not-planned",
    "pending-upstream-fix",
)
# Types whose data is just a note that must not be empty.
NOTE_REQUIRED = ("analysis-not-planned", "fix-not-planned", "pending-upstream-fix")
DETECTION_TYPES = ("manual", "nvdapi", "scan/v1")
SCANNERS = ("grype",)

# False-positive types and the VEX justification the schema's comments map each one to (§1.6).
FP_JUSTIFICATION = {
    "vulnerability-record-analysis-contested": "vulnerable_code_not_present",
    "component-vulnerability-mismatch": "component_not_present",
    "vulnerable-code-version-not-used": "vulnerable_code_not_present",
    "vulnerable-code-not-included-in-package": "vulnerable_code_not_present",
    "vulnerable-code-not-in-execution-path": "vulnerable_code_not_in_execute_path",
    "vulnerable-code-cannot-be-controlled-by-adversary": (
        "vulnerable_code_cannot_be_controlled_by_adversary"
    ),
    "inline-mitigations-exist": "inline_mitigations_already_exist",
}
FP_TYPES = tuple(FP_JUSTIFICATION)

# A fixed version needs the epoch suffix -rN (pkg/versions/validate.go, versionWithEpochRegex).
FIXED_VERSION = re.compile(
    r"^([0-9]+)((\.[0-9]+)*)([a-z]?)((_alpha|_beta|_pre|_rc)([0-9]*))?"
    r"((_cvs|_svn|_git|_hg|_p)([0-9]*))?((-r)([0-9]+))?(-r[0-9]+)$"
)

# Go's zero time: what a missing timestamp sorts as.
ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class NvdApiDetection:
    cpe_searched: str
    cpe_found: str


@dataclass(frozen=True)
class ScanV1Detection:
    subpackage_name: str
    component_id: str
    component_name: str
    component_version: str
    component_type: str
    component_location: str
    scanner: str


SCAN_V1_KEYS = {
    "subpackageName": "subpackage_name",
    "componentID": "component_id",
    "componentName": "component_name",
    "componentVersion": "component_version",
    "componentType": "component_type",
    "componentLocation": "component_location",
    "scanner": "scanner",
}


@dataclass(frozen=True)
class Detection:
    type: str
    data: NvdApiDetection | ScanV1Detection | None = None
    has_data: bool = False  # a data key was written (``manual`` must have none)


@dataclass(frozen=True)
class TruePositive:
    note: str = ""


@dataclass(frozen=True)
class Fixed:
    fixed_version: str


@dataclass(frozen=True)
class FalsePositive:
    type: str
    note: str = ""


@dataclass(frozen=True)
class NoteData:
    """The data of ``fix-not-planned``, ``analysis-not-planned`` and ``pending-upstream-fix``."""

    note: str


EventData = Detection | TruePositive | Fixed | FalsePositive | NoteData


@dataclass(frozen=True)
class Event:
    timestamp: datetime | None  # aware, UTC; None when the key is missing (Go: zero time)
    type: str
    data: EventData | None = None

    @property
    def sort_key(self) -> datetime:
        return self.timestamp or ZERO_TIME

    @property
    def note(self) -> str:
        data = self.data
        if isinstance(data, (TruePositive, FalsePositive, NoteData)):
            return data.note
        return ""

    @property
    def fixed_version(self) -> str | None:
        return self.data.fixed_version if isinstance(self.data, Fixed) else None

    @property
    def fp_type(self) -> str | None:
        return self.data.type if isinstance(self.data, FalsePositive) else None

    @property
    def timestamp_text(self) -> str:
        """RFC 3339 in UTC, seconds (Go's ``Timestamp.String``)."""
        return self.sort_key.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Advisory:
    id: str
    aliases: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def sorted_events(self) -> list[Event]:
        # Stable: events with equal timestamps keep their file order, the last one wins.
        return sorted(self.events, key=lambda event: event.sort_key)

    def latest(self) -> Event | None:
        ordered = self.sorted_events()
        return ordered[-1] if ordered else None

    def resolved(self) -> bool:
        latest = self.latest()
        return latest is not None and latest.type not in (
            "detection",
            "true-positive-determination",
        )

    def describes(self, vuln_id: str) -> bool:
        return vuln_id == self.id or vuln_id in self.aliases


@dataclass
class Document:
    schema_version: str
    package: str
    advisories: list[Advisory]
    where: str = "<advisory>"
    # Field path ("advisories[0].events[1].data") -> 1-based line, for errors.
    lines: dict[str, int] = field(default_factory=dict)
    source: Any = None  # formats.advisory_yaml.YamlSource, when read from (or written to) YAML

    def line_of(self, path: str) -> int | None:
        return line_of(self.lines, path)

    def problem(self, message: str, *, rule: str, path: str) -> AdvisoryError:
        """An AdvisoryError about the field at ``path`` of this document (file, line, field)."""
        return AdvisoryError(
            message, rule=rule, where=self.where, line=self.line_of(path), field=path
        )

    def get(self, vuln_id: str) -> Advisory | None:
        """The advisory with this ID or alias."""
        return next((adv for adv in self.advisories if adv.describes(vuln_id)), None)


def line_of(lines: dict[str, int], path: str) -> int | None:
    """The line of the field at ``path``, or of its nearest enclosing field that has one."""
    while path:
        if path in lines:
            return lines[path]
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""
    return lines.get("")


def document_file_name(package: str) -> str:
    return f"{package}.advisories.yaml"
