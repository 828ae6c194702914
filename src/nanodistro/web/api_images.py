"""The API's reads of images, the event log and the factory's jobs (their logs as server-sent
events). The console's pages (pages_images.py) render the same queries."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse

from nanodistro.errors import ConfigError
from nanodistro.factory.events import parse_since
from nanodistro.factory.state.db import State
from nanodistro.web import queries_activity, queries_images
from nanodistro.web.context import AUTH_RESPONSES, Ctx, Reader, WebContext
from nanodistro.web.queries_activity import EventOut, EventType, JobOut, JobState, JobSummary
from nanodistro.web.queries_images import ImageDetail, ImageSummary, PackageDiff
from nanodistro.web.sse import (
    EVENT_STREAM,
    KEEPALIVE_SECONDS,
    POLL_SECONDS,
    event,
    follow_file,
    stream_response,
)

__all__ = ["parse_since_param", "router"]

router = APIRouter(prefix="/api", responses=AUTH_RESPONSES)

# ids beyond what a database integer holds are answered 422, not a driver overflow
MAX_ID = 2**62
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such image (or build)."}}


# ------------------------------------------------------------------------------------ images


@router.get("/images", response_model=list[ImageSummary], tags=["images"], summary="Every image")
def get_images(context: Ctx, _reader: Reader) -> list[ImageSummary]:
    return queries_images.list_images(context.workspace, context.state)


@router.get(
    "/images/{name}",
    response_model=ImageDetail,
    tags=["images"],
    summary="One image: builds, tags, sizes, events, diff, signatures, vulnerabilities",
    responses=_NOT_FOUND,
)
def get_image(name: str, context: Ctx, _reader: Reader) -> ImageDetail:
    try:
        return queries_images.image_detail(context.workspace, context.state, name)
    except queries_images.UnknownImage as error:
        raise HTTPException(404, str(error)) from None


@router.get(
    "/images/{name}/diff",
    response_model=PackageDiff,
    tags=["images"],
    summary="Packages added, removed and changed between two builds (default: the last two)",
    responses=_NOT_FOUND,
)
def get_image_diff(
    name: str,
    context: Ctx,
    _reader: Reader,
    from_digest: Annotated[
        str | None, Query(alias="from", max_length=200, description="Default: the previous build.")
    ] = None,
    to_digest: Annotated[
        str | None, Query(alias="to", max_length=200, description="Default: the newest build.")
    ] = None,
) -> PackageDiff:
    try:
        diff = queries_images.image_diff(
            context.workspace, context.state, name, from_digest or None, to_digest or None
        )
    except (queries_images.UnknownImage, queries_images.UnknownVersion) as error:
        raise HTTPException(404, str(error)) from None
    if diff is None:
        raise HTTPException(404, f"image {name!r} has no recorded build")
    return diff


# ------------------------------------------------------------------------------------ events


def parse_since_param(since: str | None) -> datetime | None:
    """``since`` as ``nanodistro events --since`` takes it (10m, 2h, an ISO time); 400 when
    it is neither."""
    if not since:
        return None
    try:
        return parse_since(since, field_name="since")
    except ConfigError as error:
        raise HTTPException(400, str(error)) from None
    except (OverflowError, ValueError):
        raise HTTPException(400, f"since {since!r} is out of range") from None


@router.get(
    "/events",
    response_model=list[EventOut],
    tags=["events"],
    summary="The event log, newest first",
    responses={400: {"description": "An unreadable `since`."}},
)
def get_events(
    context: Ctx,
    _reader: Reader,
    subject: Annotated[
        str | None,
        Query(max_length=255, description="Exact (recipe:zlib), or a kind ending in ':'."),
    ] = None,
    type: Annotated[EventType | None, Query()] = None,
    since: Annotated[
        str | None, Query(max_length=64, description="10m, 2h, 1d, or an ISO-8601 time.")
    ] = None,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Older than this id.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[EventOut]:
    return queries_activity.list_events(
        context.state,
        subject=subject or None,
        types=[type] if type else None,
        since=parse_since_param(since),
        before=before,
        limit=limit,
    )


# -------------------------------------------------------------------------------------- jobs


@router.get("/jobs", response_model=list[JobSummary], tags=["jobs"], summary="Jobs, newest first")
def get_jobs(
    context: Ctx,
    _reader: Reader,
    state: Annotated[JobState | None, Query()] = None,
    kind: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[JobSummary]:
    return queries_activity.list_jobs(
        context.state, job_state=state, kind=kind or None, limit=limit
    )


def job_or_404(context: WebContext, job_id: int) -> JobOut:
    job = queries_activity.get_job(context.state, job_id)
    if job is None:
        raise HTTPException(404, f"no job {job_id}")
    return job


JobId = Annotated[int, PathParam(ge=1, le=MAX_ID)]


@router.get(
    "/jobs/{job_id}",
    response_model=JobOut,
    tags=["jobs"],
    summary="One job",
    responses={404: {"description": "No such job."}},
)
def get_job(job_id: JobId, context: Ctx, _reader: Reader) -> JobOut:
    return job_or_404(context, job_id)


def _job_log_path(state: State, root: Path, job_id: int) -> Path | None:
    """The log the executor recorded for the job (factory/joblog.py), None before it starts."""
    job = queries_activity.get_job(state, job_id)
    if job is None or not job.log_path:
        return None
    path = Path(job.log_path)
    return path if path.is_absolute() else root / path


async def follow_job_log(
    state: State, root: Path, job_id: int, *, poll: float = POLL_SECONDS
) -> AsyncIterator[str]:
    """The job's log as server-sent events (``line`` ..., ``end`` once the job succeeded or
    failed). Until the job starts (and so gets its log) keep-alives are sent; a job that
    ended without a log (queued work that failed before starting, an executor without a log
    folder) gets one line saying so and its error, then ``end``. Database reads run on a
    worker thread, never on the event loop."""

    def done() -> bool:
        return queries_activity.job_done(state, job_id)

    quiet_since = time.monotonic()
    path = await asyncio.to_thread(_job_log_path, state, root, job_id)
    while path is None and not await asyncio.to_thread(done):
        if time.monotonic() - quiet_since > KEEPALIVE_SECONDS:
            yield ": keep-alive\n\n"
            quiet_since = time.monotonic()
        await asyncio.sleep(poll)
        path = await asyncio.to_thread(_job_log_path, state, root, job_id)
    if path is None or not path.is_file():
        job = await asyncio.to_thread(queries_activity.get_job, state, job_id)
        note = f"no log recorded for job {job_id}" + (f" ({path} is gone)" if path else "")
        lines = [note, *((job.error or "").splitlines() if job else [])]
        yield "".join(event("line", line) for line in lines)
        yield event("end", "")
        return
    async for chunk in follow_file(path, done, poll=poll):
        yield chunk


@router.get(
    "/jobs/{job_id}/log",
    tags=["jobs"],
    summary="A job's log, line by line as it grows (server-sent events: line ..., end)",
    response_class=StreamingResponse,
    responses={
        200: EVENT_STREAM,
        404: {"description": "No such job."},
    },
)
def get_job_log(job_id: JobId, context: Ctx, _reader: Reader) -> StreamingResponse:
    job_or_404(context, job_id)
    return stream_response(follow_job_log(context.state, context.workspace.root, job_id))
