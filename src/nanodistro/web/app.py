"""The console and API as one FastAPI application over a workspace.

``create_app`` wires the routers (one module per concern: reads, runs, webhooks, operations,
pages) to a ``WebContext``; ``nanodistro serve`` (cli/serve.py) builds the context, starts the
runner with the app and serves it with uvicorn.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from nanodistro import __version__
from nanodistro.web import (
    api_catalog,
    api_images,
    api_runs,
    hooks,
    ops,
    pages_catalog,
    pages_common,
    pages_images,
)
from nanodistro.web.context import WebContext

__all__ = ["STATIC", "create_app"]

STATIC = Path(__file__).parent / "static"


def create_app(context: WebContext) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if context.runner is not None:
            context.runner.start()
        for service in context.services:
            service.start()
        try:
            yield
        finally:
            for service in reversed(context.services):
                service.stop()
            if context.runner is not None:
                context.runner.stop(timeout=5)

    app = FastAPI(
        title="nanodistro",
        version=__version__,
        description="The factory's catalog, images, events and runs; triggers need a token.",
        lifespan=lifespan,
        # FastAPI reads a route's body before its dependencies run: without a cap, anyone could
        # make the process buffer any size of body before the token check answers 401.
        max_body_size=hooks.MAX_BODY,
    )
    app.state.context = context

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> Response:
        # a page asked for without a token (public-reads = false): the browser goes to the
        # sign-in page and comes back; API clients keep their JSON 401
        page = not request.url.path.startswith(("/api/", "/hooks/", "/metrics", "/healthz"))
        if error.status_code == 401 and page and request.method == "GET":
            target = quote(
                request.url.path + (f"?{request.url.query}" if request.url.query else "")
            )
            return RedirectResponse(f"/login?next={target}", status_code=303)
        return await http_exception_handler(request, error)

    routers = (
        api_catalog,
        api_images,
        api_runs,
        hooks,
        ops,
        pages_common,
        pages_catalog,
        pages_images,
    )
    for module in routers:
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
