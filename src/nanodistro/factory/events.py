"""The factory's append-only event log: what happened, to what, when.

Every step of the loop records an event (``record``); ``nanodistro events`` and freshness read
them back (``query``). There is deliberately no update or delete: the migration also makes the
database refuse both, so the log stays evidence.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from nanodistro.errors import ConfigError
from nanodistro.factory.state.db import State
from nanodistro.factory.state.models import EventRow

__all__ = [
    "BUILD_FAILED",
    "BUILD_STARTED",
    "BUILD_SUCCEEDED",
    "EVENT_TYPES",
    "GATE_BLOCKED",
    "IMAGE_BUILT",
    "JOB_ATTEMPT",
    "JOB_RESULT_DROPPED",
    "PROMOTED",
    "PUBLISHED",
    "RECIPE_BUMPED",
    "RELEASE_DETECTED",
    "REPRODUCIBILITY_CHECKED",
    "ROLLED_BACK",
    "SMOKE_FAILED",
    "SMOKE_PASSED",
    "SUBJECT_KINDS",
    "TEST_FAILED",
    "TEST_PASSED",
    "VULNERABILITY_DETECTED",
    "VULNERABILITY_FIXED",
    "Event",
    "parse_duration",
    "parse_since",
    "query",
    "record",
]

RELEASE_DETECTED = "release-detected"
RECIPE_BUMPED = "recipe-bumped"
BUILD_STARTED = "build-started"
BUILD_SUCCEEDED = "build-succeeded"
BUILD_FAILED = "build-failed"
TEST_PASSED = "test-passed"
TEST_FAILED = "test-failed"
PUBLISHED = "published"
IMAGE_BUILT = "image-built"
SMOKE_PASSED = "smoke-passed"
SMOKE_FAILED = "smoke-failed"
PROMOTED = "promoted"
ROLLED_BACK = "rolled-back"
GATE_BLOCKED = "gate-blocked"
# a published package rebuilt independently and compared (factory/reproducibility.py)
REPRODUCIBILITY_CHECKED = "reproducibility-checked"
# a vulnerability matched a package of the catalog for the first time / no longer matches the
# package promoted to stable (factory/vulnerabilities.py); subject vulnerability:<id>
VULNERABILITY_DETECTED = "vulnerability-detected"
VULNERABILITY_FIXED = "vulnerability-fixed"
# a Celery worker started a delivery of a job / a worker's result was not accepted (the job
# was no longer that attempt's, or the output was refused); subject job:<key>
# (factory/distributed)
JOB_ATTEMPT = "job-attempt"
JOB_RESULT_DROPPED = "job-result-dropped"

EVENT_TYPES: tuple[str, ...] = (
    RELEASE_DETECTED,
    RECIPE_BUMPED,
    BUILD_STARTED,
    BUILD_SUCCEEDED,
    BUILD_FAILED,
    TEST_PASSED,
    TEST_FAILED,
    PUBLISHED,
    IMAGE_BUILT,
    SMOKE_PASSED,
    SMOKE_FAILED,
    PROMOTED,
    ROLLED_BACK,
    GATE_BLOCKED,
    REPRODUCIBILITY_CHECKED,
    VULNERABILITY_DETECTED,
    VULNERABILITY_FIXED,
    JOB_ATTEMPT,
    JOB_RESULT_DROPPED,
)

# Subjects are "<kind>:<name>": recipe:zlib, package:zlib-dev, image:python, channel:stable,
# cycle:<id>, vulnerability:CVE-2024-1234, job:<job key>.
SUBJECT_KINDS: tuple[str, ...] = (
    "recipe",
    "package",
    "image",
    "channel",
    "cycle",
    "vulnerability",
    "job",
)


@dataclass(frozen=True)
class Event:
    id: int
    type: str
    subject: str
    time: datetime  # timezone-aware UTC
    payload: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "subject": self.subject,
            "time": _iso(self.time),
            "payload": self.payload,
        }


def _iso(time: datetime) -> str:
    return time.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _event(row: EventRow) -> Event:
    return Event(row.id, row.type, row.subject, row.time, dict(row.payload))


def check_type(type_: str, field_name: str = "type") -> str:
    if type_ not in EVENT_TYPES:
        close = difflib.get_close_matches(type_, EVENT_TYPES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"unknown event type {type_!r}{hint}; expected one of {', '.join(EVENT_TYPES)}",
            field=field_name,
        )
    return type_


def _check_subject(subject: str) -> str:
    kind, sep, name = subject.partition(":")
    if not sep or not name or kind not in SUBJECT_KINDS:
        raise ConfigError(
            f"expected a subject '<kind>:<name>' with kind one of {', '.join(SUBJECT_KINDS)}, "
            f"got {subject!r}",
            field="subject",
        )
    return subject


def record(
    state: State,
    type: str,
    subject: str,
    payload: Mapping[str, Any] | None = None,
    time: datetime | None = None,
) -> Event:
    """Append one event; ``time`` defaults to now and must be timezone-aware."""
    if time is not None and time.tzinfo is None:
        raise ConfigError("expected a timezone-aware time", field="time")
    row = EventRow(
        type=check_type(type),
        subject=_check_subject(subject),
        time=(time or datetime.now(UTC)).astimezone(UTC),
        payload=dict(payload or {}),
    )
    with state.session() as session, session.begin():
        session.add(row)
        session.flush()
        return _event(row)


def query(
    state: State,
    *,
    subject: str | None = None,
    since: datetime | None = None,
    types: Iterable[str] | None = None,
) -> list[Event]:
    """Events in the order they were recorded. ``subject`` matches exactly, or every subject of a
    kind when it ends in ``:`` (``recipe:``); ``since`` is inclusive."""
    statement = select(EventRow).order_by(EventRow.id)
    if subject is not None:
        if subject.endswith(":"):
            statement = statement.where(EventRow.subject.startswith(subject, autoescape=True))
        else:
            statement = statement.where(EventRow.subject == subject)
    if since is not None:
        if since.tzinfo is None:
            raise ConfigError("expected a timezone-aware time", field="since")
        statement = statement.where(EventRow.time >= since)
    if types is not None:
        wanted = [check_type(t) for t in types]
        statement = statement.where(EventRow.type.in_(wanted))
    with state.session() as session:
        return [_event(row) for row in session.scalars(statement)]


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION_HELP = "a duration like 90s, 10m, 2h, 1d, 1w or 1h30m"


def parse_duration(text: str, field_name: str = "duration") -> timedelta:
    """``10m``, ``2h``, ``1d``, ``1h30m``... as a timedelta (no unit is an error, not seconds)."""
    compact = text.strip().lower()
    parts = _DURATION.findall(compact)
    if not compact or "".join(f"{n}{u}" for n, u in parts) != compact.replace(" ", ""):
        raise ConfigError(f"expected {_DURATION_HELP}, got {text!r}", field=field_name)
    return timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in parts))


def parse_since(text: str, *, now: datetime | None = None, field_name: str = "--since") -> datetime:
    """A relative age (``10m`` = ten minutes ago) or an ISO-8601 time; a time without a zone is
    UTC, like every time the factory prints."""
    stripped = text.strip()
    if stripped[:1].isdigit() and stripped[-1:].lower() in _UNITS:
        return (now or datetime.now(UTC)) - parse_duration(stripped, field_name)
    try:
        parsed = datetime.fromisoformat(stripped)
    except ValueError:
        raise ConfigError(
            f"expected an ISO-8601 time (2025-01-31 or 2025-01-31T12:00:00Z) or "
            f"{_DURATION_HELP} (that long ago), got {text!r}",
            field=field_name,
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
