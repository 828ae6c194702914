"""The console's catalog pages: the catalog (``/``), one package (``/packages/{name}``) and the
freshness dashboard (``/freshness``), rendered from the same queries the JSON API answers with."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from nanodistro.web.context import Ctx, Reader
from nanodistro.web.pages_common import render
from nanodistro.web.queries_catalog import catalog, json_ready, package_detail
from nanodistro.web.queries_freshness import freshness_dashboard

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def catalog_page(request: Request, context: Ctx, _reader: Reader) -> HTMLResponse:
    return render(request, "catalog.html", catalog=catalog(context))


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
