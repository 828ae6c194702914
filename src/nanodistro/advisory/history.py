"""The diff-based rules of ``advisory validate`` (reference/security.md §1.10 item 4): the
working documents compared with a base state (a git revision), so history stays append-only.

========================  ====================================================================
rule                      what it checks
========================  ====================================================================
document-removed          a document of the base is still there ("document was removed")
advisory-removed          every advisory of the base document is still there (by ID)
events-append-only        every event of the base advisory is still there, unchanged ("one or
                          more events were modified or removed" / "... were removed")
event-age                 an event added since the base is less than 30 days old
========================  ====================================================================

Documents are matched by package name, advisories by ID, events by value (timestamp, type and
data; wolfictl compares them the same way, so order does not matter). What changed
(:class:`DocumentChange`) also drives two workspace rules in ``advisory/validate.py``: a new
document's package must be built by a recipe (a modified one may instead still be in the
repository index), and only ``fixed`` events added since the base must name a published version
(history that was valid when written stays valid once the index is pruned). A future timestamp
is the ``timestamp`` rule of every document.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from nanodistro.advisory.model import Advisory, Document
from nanodistro.errors import AdvisoryError

__all__ = ["MAX_EVENT_AGE", "DocumentChange", "HistoryDiff", "compare_history"]

MAX_EVENT_AGE = timedelta(days=30)  # wolfictl eventMaxValidAgeInDays


@dataclass(frozen=True)
class DocumentChange:
    """How a working document differs from the base: ``added`` holds the (advisory index, event
    index) of each event that is new, in the working document."""

    status: Literal["new", "modified", "unchanged"]
    added: frozenset[tuple[int, int]] = frozenset()


@dataclass
class HistoryDiff:
    changes: dict[str, DocumentChange] = field(default_factory=dict)  # by package
    problems: list[AdvisoryError] = field(default_factory=list)


def _added_events(base: Advisory, current: Advisory) -> tuple[list[int], bool]:
    """Indexes of the current advisory's events the base does not have, and whether some base
    event is gone (removed or modified)."""
    remaining = Counter(base.events)
    added: list[int] = []
    for index, event in enumerate(current.events):
        if remaining[event] > 0:
            remaining[event] -= 1
        else:
            added.append(index)
    return added, any(count > 0 for count in remaining.values())


def compare_history(
    base: Iterable[Document],
    current: Iterable[Document],
    *,
    now: datetime,
    base_label: str,
    unreadable: Collection[str] = (),
    max_age: timedelta = MAX_EVENT_AGE,
) -> HistoryDiff:
    """Compare the base documents with the working ones. ``unreadable`` names packages whose
    working file exists but could not be decoded (already an error; not "removed" too);
    ``base_label`` (e.g. the revision) goes into the messages."""
    result = HistoryDiff()
    working: dict[str, Document] = {}
    for doc in current:
        working.setdefault(doc.package, doc)
    before: dict[str, Document] = {}
    for doc in base:
        before.setdefault(doc.package, doc)

    for package, removed in before.items():
        if package not in working and package not in unreadable:
            result.problems.append(
                AdvisoryError(
                    f"document was removed (package {package!r} has one in {base_label}); "
                    "advisory history is append-only",
                    rule="document-removed",
                    where=removed.where,
                )
            )

    for package, doc in working.items():
        old = before.get(package)
        added: set[tuple[int, int]]
        if old is None:
            added = {(a, e) for a, adv in enumerate(doc.advisories) for e in range(len(adv.events))}
            result.changes[package] = DocumentChange("new", frozenset(added))
            _check_ages(result, doc, added, now, max_age)
            continue
        added = set()
        ids = {adv.id for adv in doc.advisories}
        for gone_adv in old.advisories:
            if gone_adv.id not in ids:
                result.problems.append(
                    doc.problem(
                        f"advisory {gone_adv.id} was removed (it is in {base_label}); "
                        "advisory history is append-only",
                        rule="advisory-removed",
                        path="advisories",
                    )
                )
        for a, adv in enumerate(doc.advisories):
            before_adv = next((o for o in old.advisories if o.id == adv.id), None)
            if before_adv is None:
                added.update((a, e) for e in range(len(adv.events)))
                continue
            new_events, gone = _added_events(before_adv, adv)
            added.update((a, e) for e in new_events)
            if gone:
                what = "modified or removed" if new_events else "removed"
                path = f"advisories[{a}].events"
                result.problems.append(
                    doc.problem(
                        f"{adv.id}: one or more events were {what} (compared with "
                        f"{base_label}); events may only be appended",
                        rule="events-append-only",
                        path=path,
                    )
                )
        changed = bool(added) or doc.package != old.package or _differs(old, doc)
        result.changes[package] = DocumentChange(
            "modified" if changed else "unchanged", frozenset(added)
        )
        _check_ages(result, doc, added, now, max_age)
    return result


def _differs(old: Document, doc: Document) -> bool:
    return [(a.id, a.aliases, a.events) for a in old.advisories] != [
        (a.id, a.aliases, a.events) for a in doc.advisories
    ]


def _check_ages(
    result: HistoryDiff,
    doc: Document,
    added: Iterable[tuple[int, int]],
    now: datetime,
    max_age: timedelta,
) -> None:
    for a, e in sorted(added):
        event = doc.advisories[a].events[e]
        if event.timestamp is None:
            continue  # the timestamp rule reports it
        if now - event.timestamp >= max_age:
            path = f"advisories[{a}].events[{e}].timestamp"
            result.problems.append(
                doc.problem(
                    f"event {e + 1} (just added): timestamp {event.timestamp_text} is more "
                    f"than {max_age.days} days ago; timestamps should record when the event "
                    "was created",
                    rule="event-age",
                    path=path,
                )
            )
