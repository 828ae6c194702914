"""The console's catalog pages: the catalog (``/``), one package (``/packages/{name}``) and the
freshness dashboard (``/freshness``), rendered from the same queries the JSON API answers with."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from nanodistro.web.context import Ctx, Reader
from nanodistro.web.pages_common import render
from nanodistro.web.queries_catalog import catalog, json_ready
from nanodistro.web.queries_freshness import freshness_dashboard
from nanodistro.web.queries_package import package_detail

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


# Rows per catalog page: a catalog of thousands of recipes stays a page the browser draws at
# once (the API's /api/catalog still answers every row).
PAGE_ROWS = 250


@router.get("/", response_class=HTMLResponse)
def catalog_page(
    request: Request,
    context: Ctx,
    _reader: Reader,
    q: Annotated[str, Query(max_length=200)] = "",
    stale: bool = False,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    """Every package, filtered by the words of ``q`` (package, recipe, status) and ``stale``,
    ``PAGE_ROWS`` at a time."""
    whole = catalog(context)
    words = q.lower().split()
    rows = [
        row
        for row in whole.packages
        if (not stale or row.freshness.stale)
        and all(w in f"{row.package} {row.recipe} {row.status}".lower() for w in words)
    ]
    pages = max(1, -(-len(rows) // PAGE_ROWS))
    page = min(page, pages)
    shown = rows[(page - 1) * PAGE_ROWS : page * PAGE_ROWS]
    return render(
        request,
        "catalog.html",
        catalog=whole,
        rows=shown,
        matching=len(rows),
        q=q,
        stale=stale,
        page=page,
        pages=pages,
    )


@router.get("/packages/{name}", response_class=HTMLResponse)
def package_page(name: str, request: Request, context: Ctx, _reader: Reader) -> HTMLResponse:
    detail = package_detail(context, name) if len(name) <= 255 else None
    if detail is None:
        return render(
            request,
            "package.html",
            status_code=404,
            package=None,
            name=name,
            reason=f"no package or recipe named {name!r} in this workspace",
        )
    return render(request, "package.html", package=detail, name=name)


@router.get("/freshness", response_class=HTMLResponse)
def freshness_page(request: Request, context: Ctx, _reader: Reader) -> HTMLResponse:
    dashboard = freshness_dashboard(context)
    series = [json_ready(point) for point in dashboard.series]
    return render(request, "freshness.html", dashboard=dashboard, series=series)
