"""What an advisory concludes about one vulnerability in one package: the scanner's view of it.

The advisory model (``advisory/``) turns documents into these; the scanner (``vuln/``) applies
them the way grype applies the Wolfi secdb (reference/security.md §1.7, §3): a ``fixed`` entry
clears the match when the installed version is at or above ``fixed_version`` (APK order), a
``false-positive-determination`` always clears it, ``fix-not-planned`` / ``pending-upstream-fix``
keep the match but annotate it with the note, ``detection`` / ``true-positive-determination``
keep it as triaged-affected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

__all__ = ["TriageEntry", "TriageKind"]

TriageKind = Literal[
    "detection",
    "true-positive-determination",
    "fixed",
    "false-positive-determination",
    "fix-not-planned",
    "analysis-not-planned",
    "pending-upstream-fix",
]


@dataclass(frozen=True)
class TriageEntry:
    """The latest event of one advisory (events stable-sorted by timestamp, last one wins)."""

    package: str
    advisory_id: str  # CGA-xxxx-xxxx-xxxx (or a CVE/GHSA id in schema 1 documents)
    aliases: frozenset[str]  # CVE-…, GHSA-…: every id a scanner may report for it
    kind: TriageKind
    fixed_version: str | None = None  # for kind == "fixed"
    note: str = ""  # FP type + note, or the fix-not-planned / pending-upstream-fix note
    timestamp: str = ""  # RFC 3339, of the latest event
    ids: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ids", frozenset({self.advisory_id, *self.aliases}))
