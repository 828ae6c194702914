"""The validation rules of advisory documents (reference/security.md §1.2-1.6, §1.10), each
reported as an :class:`AdvisoryError` naming file, line, field and the rule:

========================  ====================================================================
rule                      what it checks
========================  ====================================================================
schema-version            parses; not newer than 2.0.2; MAJOR not below 2 (missing = "1")
package-name              ``package.name`` is not empty
file-name                 the file is named ``<package.name>.advisories.yaml``
advisories-present        at least one advisory ("this file should not exist" otherwise)
duplicate-id              no ID or alias repeats anywhere in the document (or, across
                          documents, no advisory ID repeats in the workspace)
advisory-id               ``CGA-xxxx-xxxx-xxxx`` over the alphabet 23456789cfghjmpqrvwx
alias-format              CVE-YYYY-NNNN…, GHSA-xxxx-xxxx-xxxx or GO-YYYY-NNNN (never a CGA ID)
alias-duplicate           an alias listed twice, or equal to the advisory's ID
events-present            at least one event
timestamp                 set (non-zero) and at most 2 h in the future
event-type                one of the seven event types
event-data                the data the type requires is present
detection-type            manual | nvdapi | scan/v1
detection-data            manual: none; nvdapi: CPE 2.3 strings; scan/v1: all fields set,
                          scanner grype
fixed-version             non-empty and a Wolfi version with the epoch (``-rN``)
fp-type                   one of the seven false-positive types
note-required             fix-not-planned, analysis-not-planned, pending-upstream-fix have a note
========================  ====================================================================

(``strict-keys``, ``structure``, ``timestamp`` format and ``yaml`` are raised while decoding,
``advisory/decode.py``.) Workspace rules (``package-exists``, ``fixed-version-exists``) are in
:func:`check_against_workspace`, fed by the caller with what the recipes and repository hold.
The diff-based rules (history is append-only, new events are recent) are in
``advisory/history.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import PurePath

from nanodistro.advisory.history import DocumentChange
from nanodistro.advisory.model import (
    ADVISORY_ID,
    ALIAS_PATTERNS,
    DETECTION_TYPES,
    EVENT_TYPES,
    FIXED_VERSION,
    FP_TYPES,
    NOTE_REQUIRED,
    SCAN_V1_KEYS,
    SCANNERS,
    SCHEMA_VERSION,
    ZERO_TIME,
    Detection,
    Document,
    Event,
    FalsePositive,
    Fixed,
    NoteData,
    NvdApiDetection,
    ScanV1Detection,
    document_file_name,
)
from nanodistro.errors import AdvisoryError

__all__ = [
    "check_against_workspace",
    "check_unique_ids",
    "document_problems",
    "schema_version_problem",
]

FUTURE_TOLERANCE = timedelta(hours=2)
_GO_VERSION = re.compile(r"^v?([0-9]+(?:\.[0-9]+)*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
_DATA_TYPE = {
    "detection": "Detection",
    "fixed": "Fixed",
    "false-positive-determination": "FalsePositiveDetermination",
    "analysis-not-planned": "AnalysisNotPlanned",
    "fix-not-planned": "FixNotPlanned",
    "pending-upstream-fix": "PendingUpstreamFix",
}


def _segments(version: str) -> tuple[int, ...] | None:
    match = _GO_VERSION.match(version)
    if not match:
        return None
    numbers = [int(part) for part in match.group(1).split(".")]
    return tuple([*numbers, 0, 0, 0][:3]) if len(numbers) <= 3 else tuple(numbers)


def schema_version_problem(version: str) -> str | None:
    """Why a document of this schema version cannot be handled (None: it can)."""
    ours = _segments(SCHEMA_VERSION)
    theirs = _segments(version)
    assert ours is not None
    if theirs is None:
        return f"schema-version {version!r} is not a version"
    if theirs > ours:
        return (
            f"document schema version {version!r} is newer than the latest known {SCHEMA_VERSION!r}"
        )
    if theirs[0] < ours[0]:
        return (
            f"document schema version {version!r} is too old (the unversioned v1 format when "
            f'missing); at least schema version "{ours[0]}" is required'
        )
    return None


class _Collector:
    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.problems: list[AdvisoryError] = []

    def add(self, rule: str, path: str, message: str) -> None:
        self.problems.append(
            AdvisoryError(
                message,
                rule=rule,
                where=self.doc.where,
                line=self.doc.line_of(path) if path else 1,
                field=path or None,
            )
        )


def document_problems(
    doc: Document, *, file_name: str | None = None, now: datetime | None = None
) -> list[AdvisoryError]:
    """Every rule one document breaks (empty: valid). ``file_name`` (default: the base name of
    ``doc.where``) is checked against the package name."""
    out = _Collector(doc)
    moment = now or datetime.now(UTC)
    problem = schema_version_problem(doc.schema_version)
    if problem:
        out.add("schema-version", "schema-version", problem)
    if not doc.package:
        out.add("package-name", "package.name", "package name must not be empty")
    name = file_name if file_name is not None else PurePath(doc.where).name
    if doc.package and name != document_file_name(doc.package):
        out.add(
            "file-name",
            "",
            f"file name {name!r} does not match the package: expected "
            f"{document_file_name(doc.package)!r}",
        )
    if not doc.advisories:
        out.add(
            "advisories-present",
            "advisories",
            "no advisories: this file should not exist if there are no advisories recorded",
        )
    seen: set[str] = set()
    for index, adv in enumerate(doc.advisories):
        path = f"advisories[{index}]"
        if adv.id in seen:
            out.add("duplicate-id", f"{path}.id", f"advisory ID {adv.id!r} is not unique")
        seen.add(adv.id)
        for number, alias in enumerate(adv.aliases):
            if alias in seen and alias != adv.id:
                out.add(
                    "duplicate-id",
                    f"{path}.aliases[{number}]",
                    f"advisory alias {alias!r} is not unique in the document",
                )
            seen.add(alias)
    for index, adv in enumerate(doc.advisories):
        _advisory_problems(out, f"advisories[{index}]", adv.id, adv.aliases, adv.events, moment)
    return out.problems


def _advisory_problems(
    out: _Collector,
    path: str,
    advisory_id: str,
    aliases: list[str],
    events: list[Event],
    now: datetime,
) -> None:
    if not ADVISORY_ID.match(advisory_id):
        out.add(
            "advisory-id",
            f"{path}.id",
            f"advisory ID {advisory_id!r} must match {ADVISORY_ID.pattern}",
        )
    listed: set[str] = set()
    for number, alias in enumerate(aliases):
        where = f"{path}.aliases[{number}]"
        if alias in listed:
            out.add("alias-duplicate", where, f"{alias!r} is duplicated in the list")
        listed.add(alias)
        if alias == advisory_id:
            out.add("alias-duplicate", where, f"alias {alias!r} cannot duplicate the advisory's ID")
        elif ADVISORY_ID.match(alias):
            out.add("alias-format", where, f"a CGA ID ({alias!r}) cannot be an alias")
        elif not any(pattern.match(alias) for pattern in ALIAS_PATTERNS.values()):
            out.add(
                "alias-format", where, f"{alias!r} is not a valid CVE ID, GHSA ID or Go vuln ID"
            )
    if not events:
        out.add("events-present", f"{path}.events", "there must be at least one event")
    for number, event in enumerate(events):
        _event_problems(out, f"{path}.events[{number}]", number + 1, event, now)


def _event_problems(out: _Collector, path: str, number: int, event: Event, now: datetime) -> None:
    label = f"event {number}"
    if event.timestamp is None or event.timestamp == ZERO_TIME:
        out.add("timestamp", f"{path}.timestamp", f"{label}: timestamp must not be zero")
    elif event.timestamp > now + FUTURE_TOLERANCE:
        out.add("timestamp", f"{path}.timestamp", f"{label}: timestamp must not be in the future")
    if not event.type:
        out.add("event-type", f"{path}.type", f"{label}: type must not be empty")
        return
    if event.type not in EVENT_TYPES:
        out.add(
            "event-type",
            f"{path}.type",
            f"{label}: type is {event.type!r} but must be one of [{', '.join(EVENT_TYPES)}]",
        )
        return
    data = event.data
    if event.type == "true-positive-determination":
        return  # data optional, nothing to check
    if data is None:
        out.add(
            "event-data",
            f"{path}.data",
            f"{label}: data must be of type {_DATA_TYPE[event.type]} for a {event.type} event",
        )
        return
    data_path = f"{path}.data"
    if isinstance(data, Detection):
        _detection_problems(out, data_path, label, data)
    elif isinstance(data, Fixed):
        if not data.fixed_version:
            out.add(
                "fixed-version",
                f"{data_path}.fixed-version",
                f"{label}: fixed-version must not be empty",
            )
        elif not FIXED_VERSION.match(data.fixed_version):
            out.add(
                "fixed-version",
                f"{data_path}.fixed-version",
                f"{label}: fixed-version {data.fixed_version!r} is not a valid full Wolfi package "
                "version (with epoch, like 1.2.3-r0)",
            )
    elif isinstance(data, FalsePositive):
        if data.type not in FP_TYPES:
            out.add(
                "fp-type",
                f"{data_path}.type",
                f"{label}: invalid false positive determination type {data.type!r}, must be one "
                f"of [{', '.join(FP_TYPES)}]",
            )
    elif isinstance(data, NoteData) and event.type in NOTE_REQUIRED and not data.note.strip():
        out.add("note-required", f"{data_path}.note", f"{label}: a {event.type} event needs a note")


def _detection_problems(out: _Collector, path: str, label: str, data: Detection) -> None:
    if data.type not in DETECTION_TYPES:
        out.add(
            "detection-type",
            f"{path}.type",
            f"{label}: detection type is {data.type!r} but must be one of "
            f"[{', '.join(DETECTION_TYPES)}]",
        )
        return
    if data.type == "manual":
        if data.has_data:
            out.add(
                "detection-data",
                f"{path}.data",
                f"{label}: data must be absent for detection type 'manual'",
            )
        return
    if data.data is None:
        out.add(
            "detection-data", f"{path}.data", f"{label}: detection type {data.type!r} needs data"
        )
        return
    if isinstance(data.data, NvdApiDetection):
        for key, value in (
            ("cpeSearched", data.data.cpe_searched),
            ("cpeFound", data.data.cpe_found),
        ):
            problem = _cpe_problem(value)
            if problem:
                out.add("detection-data", f"{path}.data.{key}", f"{label}: nvdapi {key}: {problem}")
    elif isinstance(data.data, ScanV1Detection):
        for key, attr in SCAN_V1_KEYS.items():
            value = getattr(data.data, attr)
            if not value:
                out.add(
                    "detection-data",
                    f"{path}.data.{key}",
                    f"{label}: scan/v1 {key} must not be empty",
                )
            elif key == "scanner" and value not in SCANNERS:
                out.add(
                    "detection-data",
                    f"{path}.data.scanner",
                    f"{label}: scanner is {value!r} but must be one of [{', '.join(SCANNERS)}]",
                )


def _cpe_problem(cpe: str) -> str | None:
    """CPE 2.3 formatted string (``cpe:2.3:part:vendor:product:...``, 11 attributes) or the
    2.2 URI form, as facebookincubator/nvdtools ``wfn.Parse`` accepts."""
    if not cpe:
        return "CPE must not be empty"
    if cpe.startswith("cpe:/"):
        return None
    if not cpe.startswith("cpe:2.3:"):
        return f"invalid CPE {cpe!r}: expected cpe:2.3:... or cpe:/..."
    parts = re.split(r"(?<!\\):", cpe)
    if len(parts) != 13:
        return f"invalid CPE {cpe!r}: expected 11 attributes after cpe:2.3, got {len(parts) - 2}"
    if parts[2] not in ("a", "h", "o", "*", "-"):
        return f"invalid CPE {cpe!r}: part must be a, h, o, * or -"
    if any(part == "" for part in parts):
        return f"invalid CPE {cpe!r}: empty attribute"
    return None


def check_unique_ids(documents: Iterable[Document]) -> list[AdvisoryError]:
    """An advisory ID may appear in one document only (wolfictl: global uniqueness)."""
    problems: list[AdvisoryError] = []
    first: dict[str, str] = {}
    for doc in documents:
        for index, adv in enumerate(doc.advisories):
            if not adv.id:
                continue
            if adv.id in first and first[adv.id] != doc.where:
                path = f"advisories[{index}].id"
                problems.append(
                    doc.problem(
                        f"duplicate advisory ID {adv.id!r} (already in {first[adv.id]})",
                        rule="duplicate-id",
                        path=path,
                    )
                )
            first.setdefault(adv.id, doc.where)
    return problems


def check_against_workspace(
    doc: Document,
    *,
    packages: Mapping[str, str] | None,
    repository_versions: Mapping[str, set[str]] | None,
    change: DocumentChange | None = None,
) -> list[AdvisoryError]:
    """The package exists (``packages``: every origin and subpackage name -> its recipe) and each
    ``fixed`` event's version was published for it (``repository_versions``: package name -> the
    full versions the repository index holds). A None input skips that check.

    ``change`` (from ``advisory/history.py``, when compared with a base state) relaxes both as
    wolfictl does: a document the base already had may name a package that is only in the
    repository index any more (its recipe was dropped), and only the ``fixed`` events added since
    the base must name a published version."""
    problems: list[AdvisoryError] = []
    known_elsewhere = (
        change is not None
        and change.status != "new"
        and repository_versions is not None
        and doc.package in repository_versions
    )
    if packages is not None and doc.package and doc.package not in packages and not known_elsewhere:
        if change is None:
            reason = "is not built by any recipe"
        elif change.status == "new":
            reason = "is not built by any recipe (a new document's package must be)"
        else:
            reason = "is neither built by a recipe nor in the repository index"
        problems.append(
            doc.problem(
                f"package {doc.package!r} {reason}",
                rule="package-exists",
                path="package.name",
            )
        )
    if repository_versions is None:
        return problems
    published = repository_versions.get(doc.package, set())
    for index, adv in enumerate(doc.advisories):
        for number, event in enumerate(adv.events):
            version = event.fixed_version
            if not version or (change is not None and (index, number) not in change.added):
                continue
            if version not in published:
                path = f"advisories[{index}].events[{number}].data.fixed-version"
                known = ", ".join(sorted(published)) or "none"
                problems.append(
                    doc.problem(
                        f"fixed-version {version!r} of {doc.package!r} is not in the repository "
                        f"(published: {known})",
                        rule="fixed-version-exists",
                        path=path,
                    )
                )
    return problems
