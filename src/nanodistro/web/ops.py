"""Operations: ``GET /healthz`` for probes and ``GET /metrics`` for Prometheus.

``/healthz`` is 200 while the state database answers and the runner (when this process has one)
is alive; 503 otherwise, with the same body saying which part is down. It needs no token:
probes carry none. ``/metrics`` follows ``[serve] public-reads`` like every read (Prometheus
sends a bearer token with ``authorization: credentials:``).
"""

from __future__ import annotations

import logging
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from nanodistro import __version__
from nanodistro.factory.state.models import RunRow
from nanodistro.web.context import Ctx, Reader, WebContext
from nanodistro.web.metrics import registry_for, render

__all__ = ["HealthOut", "router"]

log = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


class HealthOut(BaseModel):
    status: Literal["ok", "unavailable"]
    version: str
    database: str = Field(description="'ok', or why the state database cannot be read.")
    runner: Literal["alive", "stopped", "not running"] = Field(
        description="The factory runner thread: 'not running' when this process has none (or "
        "has not started it), 'stopped' when it was started and is gone."
    )
    services: dict[str, bool] = Field(
        default_factory=dict, description="Background services (webhooks out): alive or not."
    )


def _database(context: WebContext) -> str:
    try:
        with context.state.session() as session:
            session.execute(select(RunRow.id).limit(1)).all()
    except SQLAlchemyError as error:
        # the detail (paths, hosts) goes to the log, not to whoever may ask /healthz
        log.error("healthz: the state database cannot be read: %s", error)
        return "unreadable"
    return "ok"


def _runner(context: WebContext) -> Literal["alive", "stopped", "not running"]:
    runner = context.runner
    if runner is None or getattr(runner, "_thread", None) is None:
        return "not running"
    return "alive" if runner.alive else "stopped"


@router.get(
    "/healthz",
    response_model=HealthOut,
    summary="Health: the state database answers and the runner is alive",
    responses={503: {"model": HealthOut, "description": "Something is down (see the body)."}},
)
def get_healthz(context: Ctx) -> JSONResponse:
    database = _database(context)
    runner = _runner(context)
    services = {
        getattr(s, "name", type(s).__name__): bool(getattr(s, "alive", True))
        for s in context.services
    }
    healthy = database == "ok" and runner != "stopped"
    out = HealthOut(
        status="ok" if healthy else "unavailable",
        version=__version__,
        database=database,
        runner=runner,
        services=services,
    )
    return JSONResponse(out.model_dump(mode="json"), status_code=200 if healthy else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics (text format): jobs, durations, runs, events, freshness",
    response_class=Response,
    responses={200: {"content": {PROMETHEUS_TEXT: {"schema": {"type": "string"}}}}},
)
def get_metrics(request: Request, context: Ctx, _reader: Reader) -> Response:
    registry = getattr(request.app.state, "metrics_registry", None)
    if registry is None:  # one registry per app, made on the first scrape
        registry = request.app.state.metrics_registry = registry_for(context.state)
    return Response(render(registry), media_type=PROMETHEUS_TEXT)
