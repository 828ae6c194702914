"""Advisories as the scanner sees them: the latest event of each (``Latest()``: events
stable-sorted by timestamp, the last one wins; reference/security.md §1.7)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from nanodistro.advisory.model import EVENT_TYPES, Document
from nanodistro.advisory.triage import TriageEntry, TriageKind

__all__ = ["triage_entries"]


def triage_entries(documents: Iterable[Document]) -> list[TriageEntry]:
    """One :class:`TriageEntry` per advisory that has a known latest event, in document order."""
    entries: list[TriageEntry] = []
    for doc in documents:
        for adv in doc.advisories:
            latest = adv.latest()
            if latest is None or latest.type not in EVENT_TYPES:
                continue
            note = latest.note
            if latest.fp_type:
                note = f"{latest.fp_type}: {note}" if note else latest.fp_type
            entries.append(
                TriageEntry(
                    package=doc.package,
                    advisory_id=adv.id,
                    aliases=frozenset(adv.aliases),
                    kind=cast(TriageKind, latest.type),
                    fixed_version=latest.fixed_version,
                    note=note,
                    timestamp=latest.timestamp_text,
                )
            )
    return entries
