"""Console pages for images, the event log, runs and jobs: server-rendered from the queries the
API answers with (queries_images, queries_activity, the run store); run and job pages follow
their logs live (static/app.js ``nd.follow``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse

from nanodistro.factory import events
from nanodistro.web import queries_activity, queries_images
from nanodistro.web.api_images import MAX_ID, parse_since_param
from nanodistro.web.api_runs import RunOut
from nanodistro.web.context import Ctx, Reader
from nanodistro.web.pages_common import render

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

PAGE_EVENTS = 200
PAGE_RUNS = 50
PAGE_JOBS = 100
Id = Annotated[int, PathParam(ge=1, le=MAX_ID)]


def _not_found(request: Request, reason: str) -> HTMLResponse:
    return render(request, "images.html", status_code=404, images=[], error=reason)


@router.get("/images", response_class=HTMLResponse)
def images_page(request: Request, context: Ctx, _reader: Reader) -> HTMLResponse:
    images = queries_images.list_images(context.workspace, context.state)
    return render(request, "images.html", images=images, error=None)


@router.get("/images/{name}", response_class=HTMLResponse)
def image_page(
    request: Request,
    name: str,
    context: Ctx,
    _reader: Reader,
    from_digest: Annotated[str | None, Query(alias="from", max_length=200)] = None,
    to_digest: Annotated[str | None, Query(alias="to", max_length=200)] = None,
) -> HTMLResponse:
    try:
        detail = queries_images.image_detail(
            context.workspace,
            context.state,
            name,
            from_digest=from_digest or None,
            to_digest=to_digest or None,
        )
    except (queries_images.UnknownImage, queries_images.UnknownVersion) as error:
        return _not_found(request, str(error))
    sizes = [v.size for v in detail.versions if v.size is not None]
    return render(
        request,
        "image.html",
        image=detail,
        name=name,
        largest=max(sizes, default=0),
    )


@router.get("/events", response_class=HTMLResponse)
def events_page(
    request: Request,
    context: Ctx,
    _reader: Reader,
    subject: Annotated[str | None, Query(max_length=255)] = None,
    type: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[str | None, Query(max_length=64)] = None,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> HTMLResponse:
    error = None
    found: list[queries_activity.EventOut] = []
    if type and type not in events.EVENT_TYPES:
        error = f"unknown event type {type!r}"
    else:
        try:
            found = queries_activity.list_events(
                context.state,
                subject=subject or None,
                types=[type] if type else None,
                since=parse_since_param(since),
                before=before,
                limit=PAGE_EVENTS,
            )
        except HTTPException as refused:
            error = str(refused.detail)
    return render(
        request,
        "events.html",
        status_code=400 if error else 200,
        events=found,
        event_types=events.EVENT_TYPES,
        filters={"subject": subject or "", "type": type or "", "since": since or ""},
        error=error,
        older=found[-1].id if len(found) == PAGE_EVENTS else None,
    )


@router.get("/runs", response_class=HTMLResponse)
def runs_page(request: Request, context: Ctx, _reader: Reader) -> HTMLResponse:
    runs = [RunOut.of(r) for r in context.runs.list(limit=PAGE_RUNS)]
    jobs = queries_activity.list_jobs(context.state, limit=PAGE_JOBS)
    return render(request, "runs.html", runs=runs, jobs=jobs, error=None)


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: Id, context: Ctx, _reader: Reader) -> HTMLResponse:
    run = context.runs.get(run_id)
    if run is None:
        return render(request, "runs.html", status_code=404, runs=[], jobs=[],
                      error=f"no run {run_id}")  # fmt: skip
    return render(request, "run.html", run=RunOut.of(run))


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, job_id: Id, context: Ctx, _reader: Reader) -> HTMLResponse:
    job = queries_activity.get_job(context.state, job_id)
    if job is None:
        return render(request, "runs.html", status_code=404, runs=[], jobs=[],
                      error=f"no job {job_id}")  # fmt: skip
    return render(request, "job.html", job=job)
