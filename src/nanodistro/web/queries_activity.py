"""What the console and the API say about activity: the event log (newest first, filtered, with
links from subjects to their pages) and the factory's durable jobs (the ``jobs`` table).

Every function is one bounded query (plus one for the links of a page of events), so the pages
stay fast however long the log grows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import select

from nanodistro.factory import events
from nanodistro.factory.state.db import State
from nanodistro.factory.state.models import EventRow, JobRow, PackageRow

__all__ = [
    "EventOut",
    "EventType",
    "JobOut",
    "JobState",
    "JobSummary",
    "get_job",
    "list_events",
    "list_jobs",
    "subject_links",
]

EventType = Literal[
    "release-detected",
    "recipe-bumped",
    "build-started",
    "build-succeeded",
    "build-failed",
    "test-passed",
    "test-failed",
    "published",
    "image-built",
    "smoke-passed",
    "smoke-failed",
    "promoted",
    "rolled-back",
    "gate-blocked",
    "reproducibility-checked",
    "vulnerability-detected",
    "vulnerability-fixed",
    "job-attempt",
    "job-result-dropped",
]
# the API's enum is the event log's list: a new event type must be added here too
assert set(EventType.__args__) == set(events.EVENT_TYPES)  # type: ignore[attr-defined]

JobState = Literal["queued", "running", "succeeded", "failed"]


# ----------------------------------------------------------------------------------- events


class EventOut(BaseModel):
    id: int = Field(description="The log's order; page with ?before=<the last id seen>.")
    type: str
    subject: str
    time: datetime
    payload: dict[str, Any]
    link: str | None = Field(description="The console page of the subject, when it has one.")


def _matches_subject(subject: str) -> Any:
    """Exactly, or every subject of a kind when it ends in ``:`` (as ``nanodistro events``)."""
    if subject.endswith(":"):
        return EventRow.subject.startswith(subject, autoescape=True)
    return EventRow.subject == subject


def subject_links(state: State, subjects: set[str]) -> dict[str, str]:
    """subject -> console path: image:x -> /images/x, package:x -> /packages/x, recipe:x ->
    the page of the recipe's package named like it (else its first package), one query."""
    links: dict[str, str] = {}
    recipes: set[str] = set()
    for subject in subjects:
        kind, _, name = subject.partition(":")
        if not name:
            continue
        if kind == "image":
            links[subject] = f"/images/{name}"
        elif kind == "package":
            links[subject] = f"/packages/{name}"
        elif kind == "recipe":
            recipes.add(name)
    if recipes:
        statement = (
            select(PackageRow.recipe, PackageRow.name)
            .where(PackageRow.recipe.in_(sorted(recipes)))
            .distinct()
        )
        made: dict[str, set[str]] = {}
        with state.session() as session:
            for recipe, package in session.execute(statement):
                made.setdefault(recipe, set()).add(package)
        for recipe, packages in made.items():
            chosen = recipe if recipe in packages else min(packages)
            links[f"recipe:{recipe}"] = f"/packages/{chosen}"
    return links


def list_events(
    state: State,
    *,
    subject: str | None = None,
    types: list[str] | None = None,
    since: datetime | None = None,
    before: int | None = None,
    limit: int = 100,
) -> list[EventOut]:
    """Events newest first, at most ``limit``; ``before`` (an id) pages further back."""
    statement = select(EventRow).order_by(EventRow.id.desc()).limit(limit)
    if subject:
        statement = statement.where(_matches_subject(subject))
    if types:
        statement = statement.where(EventRow.type.in_(types))
    if since is not None:
        statement = statement.where(EventRow.time >= since)
    if before is not None:
        statement = statement.where(EventRow.id < before)
    with state.session() as session:
        rows = [
            (r.id, r.type, r.subject, r.time, dict(r.payload or {}))
            for r in session.scalars(statement)
        ]
    links = subject_links(state, {row[2] for row in rows})
    return [
        EventOut(id=i, type=t, subject=s, time=when, payload=p, link=links.get(s))
        for i, t, s, when, p in rows
    ]


# ------------------------------------------------------------------------------------- jobs


class JobSummary(BaseModel):
    id: int
    kind: str
    key: str = Field(description="The digest of the job's inputs.")
    state: JobState
    attempts: int
    max_attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    label: str = Field(description="What the job is about (recipe, image...) from its inputs.")
    log_url: str = Field(description="The job's log as server-sent events.")


class JobOut(JobSummary):
    not_before: datetime
    inputs: dict[str, Any]
    result: dict[str, Any] | None
    owner: str | None
    log_path: str | None


def _label(inputs: dict[str, Any]) -> str:
    for key in ("recipe", "image", "package", "name"):
        value = inputs.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def _summary_values(row: JobRow) -> dict[str, Any]:
    inputs = row.inputs if isinstance(row.inputs, dict) else {}
    return {
        "id": row.id,
        "kind": row.kind,
        "key": row.key,
        "state": row.state,
        "attempts": row.attempts,
        "max_attempts": row.max_attempts,
        "created_at": row.created_at,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
        "error": row.error,
        "label": _label(inputs),
        "log_url": f"/api/jobs/{row.id}/log",
    }


def list_jobs(
    state: State, *, job_state: str | None = None, kind: str | None = None, limit: int = 100
) -> list[JobSummary]:
    """Jobs newest first, at most ``limit``."""
    statement = select(JobRow).order_by(JobRow.id.desc()).limit(limit)
    if job_state:
        statement = statement.where(JobRow.state == job_state)
    if kind:
        statement = statement.where(JobRow.kind == kind)
    with state.session() as session:
        return [JobSummary(**_summary_values(row)) for row in session.scalars(statement)]


def get_job(state: State, job_id: int) -> JobOut | None:
    with state.session() as session:
        row = session.get(JobRow, job_id)
        if row is None:
            return None
        return JobOut(
            **_summary_values(row),
            not_before=row.not_before,
            inputs=dict(row.inputs or {}),
            result=dict(row.result) if isinstance(row.result, dict) else None,
            owner=row.owner,
            log_path=row.log_path,
        )


def job_done(state: State, job_id: int) -> bool:
    """Whether the job finished for good (or is gone): what a log stream polls."""
    with state.session() as session:
        row = session.get(JobRow, job_id)
        return row is None or row.state in ("succeeded", "failed")
