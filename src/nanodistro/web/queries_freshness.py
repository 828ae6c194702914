"""What the freshness dashboard (``/freshness``, ``GET /api/freshness``) shows: release ->
stable lead times per package version (factory/freshness.py), their p50/p95 overall, and a
time series with one point per promotion of stable (the versions it brought, and every version
promoted up to then), plus the packages with a newer upstream release than stable holds."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from pydantic import BaseModel, Field

from nanodistro.factory import events
from nanodistro.factory.freshness import PackageFreshness, freshness, percentile
from nanodistro.web.context import WebContext
from nanodistro.web.queries_catalog import CatalogRow, cached, catalog

__all__ = ["FreshnessOut", "LeadStats", "PackageLead", "SeriesPoint", "freshness_dashboard"]


class LeadStats(BaseModel):
    count: int
    p50: float | None
    p95: float | None


class PackageLead(BaseModel):
    package: str
    version: str
    arch: str
    recipe: str
    released: datetime | None
    release_source: str
    published: datetime | None
    promoted: datetime | None
    image_promoted: datetime | None
    release_to_published: float | None
    release_to_promoted: float | None
    release_to_image_promoted: float | None


class SeriesPoint(BaseModel):
    """One promotion of stable: lead times (release -> stable, seconds) of the package versions
    it brought, and of every version promoted up to then."""

    time: datetime
    repo_version: int | None
    count: int
    p50: float | None
    p95: float | None
    cumulative_count: int
    cumulative_p50: float | None
    cumulative_p95: float | None


class FreshnessOut(BaseModel):
    stats: dict[str, LeadStats] = Field(
        description="release_to_published, release_to_promoted, release_to_image_promoted, "
        "vulnerability_to_fixed_image: p50/p95 (nearest rank) in seconds."
    )
    series: list[SeriesPoint]
    packages: list[PackageLead] = Field(description="Package versions, newest first.")
    stale: list[CatalogRow] = Field(description="Packages with a newer upstream release known.")


def _series(
    report_packages: list[PackageFreshness], promotions: list[events.Event]
) -> list[SeriesPoint]:
    by_time: dict[datetime, list[float]] = defaultdict(list)
    for item in report_packages:
        lead = item.lead(item.promoted)
        if lead is not None and item.promoted is not None:
            by_time[item.promoted].append(lead)
    points = []
    so_far: list[float] = []
    for event in promotions:
        leads = by_time.pop(event.time, [])
        if not leads:
            continue
        so_far.extend(leads)
        points.append(
            SeriesPoint(
                time=event.time,
                repo_version=event.payload.get("version"),
                count=len(leads),
                p50=percentile(leads, 50),
                p95=percentile(leads, 95),
                cumulative_count=len(so_far),
                cumulative_p50=percentile(so_far, 50),
                cumulative_p95=percentile(so_far, 95),
            )
        )
    return points


def freshness_dashboard(context: WebContext) -> FreshnessOut:
    return cached("freshness", context, _dashboard)


def _dashboard(context: WebContext) -> FreshnessOut:
    report = freshness(context.state)
    promotions = events.query(context.state, subject="channel:stable", types=[events.PROMOTED])
    stats = {
        name: LeadStats(count=int(values["count"] or 0), p50=values["p50"], p95=values["p95"])
        for name, values in report.stats().items()
    }
    leads = [
        PackageLead(
            package=p.package,
            version=p.version,
            arch=p.arch,
            recipe=p.recipe,
            released=p.released,
            release_source=p.release_source,
            published=p.published,
            promoted=p.promoted,
            image_promoted=p.image_promoted,
            release_to_published=p.lead(p.published),
            release_to_promoted=p.lead(p.promoted),
            release_to_image_promoted=p.lead(p.image_promoted),
        )
        for p in reversed(report.packages)
    ]
    stale = [row for row in catalog(context).packages if row.freshness.stale]
    return FreshnessOut(
        stats=stats, series=_series(report.packages, promotions), packages=leads, stale=stale
    )
