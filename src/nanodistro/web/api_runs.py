"""The API's triggers and their runs: ``POST`` a cycle, a rebuild, a promotion or a rollback
(token needed), then follow the run (``GET /api/runs/{id}``, its log as server-sent events)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path as FilePath  # fastapi's Path is the route parameter
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from nanodistro.errors import ConfigError
from nanodistro.web.context import AUTH_RESPONSES, BODY_RESPONSES, Ctx, Reader, WebContext, Writer
from nanodistro.web.runs import RUN_KINDS, Run, recipe_path
from nanodistro.web.sse import EVENT_STREAM, follow_file, stream_response

__all__ = ["RunOut", "router", "submit", "submit_run"]

router = APIRouter(prefix="/api", tags=["runs"], responses=AUTH_RESPONSES)

RunKind = Literal["cycle", "rebuild", "promote", "rollback", "check"]
RunState = Literal["queued", "running", "succeeded", "failed"]
# database integers are 64-bit: a larger id is a 422, not an overflow in the driver
RunId = Annotated[int, Path(ge=1, le=2**62)]
assert set(RunKind.__args__) == set(RUN_KINDS)  # type: ignore[attr-defined]


class RunOut(BaseModel):
    id: int
    kind: RunKind
    state: RunState
    params: dict[str, Any]
    requested_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    result: dict[str, Any] | None
    error: str | None
    log_url: str = Field(description="The run's log as server-sent events.")

    @classmethod
    def of(cls, run: Run) -> RunOut:
        return cls(
            id=run.id,
            kind=run.kind,  # type: ignore[arg-type]
            state=run.state,  # type: ignore[arg-type]
            params=run.params,
            requested_by=run.requested_by,
            created_at=run.created_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
            result=run.result,
            error=run.error,
            log_url=f"/api/runs/{run.id}/log",
        )


class CycleIn(BaseModel):
    monitor: bool = Field(default=True, description="Check upstreams (and bump) before building.")


class RollbackIn(BaseModel):
    to: int | None = Field(
        default=None,
        ge=1,
        description="Repository version to go back to (default: the previous one).",
    )


def submit_run(
    context: WebContext,
    kind: str,
    params: dict[str, Any],
    by: str,
    *,
    dedup_key: str | None = None,
) -> tuple[Run, bool]:
    """Queue a run and wake the runner; (the run, True), or (the run ``dedup_key`` already
    queued, False)."""
    run, created = context.runs.submit(kind, params, by, dedup_key=dedup_key)
    if created and context.runner is not None:
        context.runner.wake()
    return run, created


def submit(context: WebContext, kind: str, params: dict[str, Any], by: str) -> Run:
    """Queue a run and wake the runner."""
    return submit_run(context, kind, params, by)[0]


@router.post(
    "/cycles",
    status_code=202,
    response_model=RunOut,
    summary="Run a factory cycle",
    responses=BODY_RESPONSES,
)
def post_cycle(context: Ctx, who: Writer, body: CycleIn | None = None) -> RunOut:
    return RunOut.of(submit(context, "cycle", {"monitor": (body or CycleIn()).monitor}, who))


@router.post(
    "/recipes/{name}/rebuild",
    status_code=202,
    response_model=RunOut,
    summary="Rebuild a recipe (epoch bump), then run a cycle",
    responses={404: {"description": "No such recipe."}},
)
def post_rebuild(name: str, context: Ctx, who: Writer) -> RunOut:
    try:
        recipe_path(context.workspace, name)
    except ConfigError as error:
        raise HTTPException(404, str(error)) from None
    return RunOut.of(submit(context, "rebuild", {"recipe": name}, who))


@router.post(
    "/promote",
    status_code=202,
    response_model=RunOut,
    summary="Promote staging to stable now, whatever the gates said",
)
def post_promote(context: Ctx, who: Writer) -> RunOut:
    return RunOut.of(submit(context, "promote", {}, who))


@router.post(
    "/rollback",
    status_code=202,
    response_model=RunOut,
    summary="Roll stable back",
    responses=BODY_RESPONSES,
)
def post_rollback(context: Ctx, who: Writer, body: RollbackIn | None = None) -> RunOut:
    return RunOut.of(submit(context, "rollback", {"to": (body or RollbackIn()).to}, who))


@router.get("/runs", response_model=list[RunOut], summary="Runs, newest first")
def get_runs(
    context: Ctx,
    _reader: Reader,
    kind: Annotated[RunKind | None, Query()] = None,
    state: Annotated[RunState | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[RunOut]:
    return [RunOut.of(r) for r in context.runs.list(limit=limit, kind=kind, state=state)]


def _run_or_404(context: WebContext, run_id: int) -> Run:
    run = context.runs.get(run_id)
    if run is None:
        raise HTTPException(404, f"no run {run_id}")
    return run


@router.get(
    "/runs/{run_id}",
    response_model=RunOut,
    summary="One run",
    responses={404: {"description": "No such run."}},
)
def get_run(run_id: RunId, context: Ctx, _reader: Reader) -> RunOut:
    return RunOut.of(_run_or_404(context, run_id))


@router.get(
    "/runs/{run_id}/log",
    summary="A run's log, line by line as it grows (server-sent events: line ..., end)",
    response_class=StreamingResponse,
    responses={
        200: EVENT_STREAM,
        404: {"description": "No such run."},
    },
)
def get_run_log(run_id: RunId, context: Ctx, _reader: Reader) -> StreamingResponse:
    run = _run_or_404(context, run_id)

    def done() -> bool:
        current = context.runs.get(run_id)
        return current is None or current.done

    return stream_response(follow_file(FilePath(run.log_path) if run.log_path else None, done))
