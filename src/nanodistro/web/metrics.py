"""Prometheus metrics of the factory, read from the state database at scrape time.

Nothing is counted in memory: the database is the truth (and is shared by every process of the
workspace), so a ``Collector`` runs a handful of grouped queries per scrape. Each app gets its
own ``CollectorRegistry``: two apps in one process (tests) never mix their numbers.

Metrics (all prefixed ``nanodistro_``):
  ``jobs{kind,state}``, ``job_duration_seconds{kind}`` (histogram of finished jobs),
  ``runs{kind,state}``, ``events_total{type}``, ``freshness_seconds{step,quantile}`` (p50/p95
  of release -> published / promoted to stable / first promoted image, from factory/freshness.py),
  ``freshness_package_versions{step}`` (how many versions those quantiles cover),
  ``packages`` (package files published), ``package_names``, ``images`` (image builds),
  ``image_names``, ``up`` (1 when the database answered this scrape).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from nanodistro.errors import NanodistroError
from nanodistro.factory.state.db import State
from nanodistro.factory.state.models import EventRow, ImageRow, JobRow, PackageRow, RunRow

__all__ = ["DURATION_BUCKETS", "FactoryCollector", "registry_for", "render"]

log = logging.getLogger(__name__)

# a test is seconds, a build minutes, a big build an hour
DURATION_BUCKETS: tuple[float, ...] = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200)
QUANTILES = (("0.5", "p50"), ("0.95", "p95"))


class FactoryCollector(Collector):
    def __init__(self, state: State) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("nanodistro_up", "1 when the state database answered this scrape.")
        try:
            families = list(self._families())
        except (SQLAlchemyError, NanodistroError) as error:
            log.warning("metrics: cannot read the state database: %s", error)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self) -> Iterator[Metric]:
        with self.state.session() as session:
            jobs = session.execute(
                select(JobRow.kind, JobRow.state, func.count()).group_by(JobRow.kind, JobRow.state)
            ).all()
            finished = session.execute(
                select(JobRow.kind, JobRow.started_at, JobRow.finished_at).where(
                    JobRow.started_at.is_not(None), JobRow.finished_at.is_not(None)
                )
            ).all()
            runs = session.execute(
                select(RunRow.kind, RunRow.state, func.count()).group_by(RunRow.kind, RunRow.state)
            ).all()
            events = session.execute(
                select(EventRow.type, func.count()).group_by(EventRow.type)
            ).all()
            packages = session.scalar(select(func.count()).select_from(PackageRow)) or 0
            package_names = session.scalar(select(func.count(func.distinct(PackageRow.name)))) or 0
            images = session.scalar(select(func.count()).select_from(ImageRow)) or 0
            image_names = session.scalar(select(func.count(func.distinct(ImageRow.name)))) or 0

        family = GaugeMetricFamily(
            "nanodistro_jobs", "Jobs by kind and state.", labels=["kind", "state"]
        )
        for kind, state, count in sorted(jobs):
            family.add_metric([kind, state], count)
        yield family

        yield _durations(finished)

        family = GaugeMetricFamily(
            "nanodistro_runs",
            "Runs (API, console, hooks, schedule) by kind and state.",
            labels=["kind", "state"],
        )
        for kind, state, count in sorted(runs):
            family.add_metric([kind, state], count)
        yield family

        counter = CounterMetricFamily(
            "nanodistro_events", "Events recorded, by type.", labels=["type"]
        )
        for type_, count in sorted(events):
            counter.add_metric([type_], count)
        yield counter

        yield from _freshness(self.state)

        for name, help_text, value in (
            ("nanodistro_packages", "Package files published to the repository.", packages),
            ("nanodistro_package_names", "Distinct package names published.", package_names),
            ("nanodistro_images", "Image builds recorded.", images),
            ("nanodistro_image_names", "Distinct images built.", image_names),
        ):
            yield GaugeMetricFamily(name, help_text, value=value)


def _durations(rows: Iterable[Any]) -> Metric:
    by_kind: dict[str, list[float]] = defaultdict(list)
    for kind, started, finished in rows:
        by_kind[kind].append(max(0.0, (finished - started).total_seconds()))
    family = HistogramMetricFamily(
        "nanodistro_job_duration_seconds", "Run time of finished jobs, by kind.", labels=["kind"]
    )
    for kind in sorted(by_kind):
        values = by_kind[kind]
        buckets = [(_bucket(b), sum(1 for v in values if v <= b)) for b in DURATION_BUCKETS]
        buckets.append(("+Inf", len(values)))
        family.add_metric([kind], buckets, sum_value=sum(values))
    return family


def _bucket(bound: float) -> str:
    return str(float(bound))


def _freshness(state: State) -> Iterator[Metric]:
    from nanodistro.factory.freshness import freshness

    stats = freshness(state).stats()
    quantiles = GaugeMetricFamily(
        "nanodistro_freshness_seconds",
        "Lead time from an upstream release to each step (nearest-rank quantiles over package "
        "versions): release_to_published (staging), release_to_promoted (stable), "
        "release_to_image_promoted, vulnerability_to_fixed_image.",
        labels=["step", "quantile"],
    )
    counts = GaugeMetricFamily(
        "nanodistro_freshness_package_versions",
        "How many package versions (or vulnerabilities) reached each step.",
        labels=["step"],
    )
    for step in sorted(stats):
        values = stats[step]
        counts.add_metric([step], values.get("count") or 0)
        for quantile, key in QUANTILES:
            value = values.get(key)
            if value is not None:
                quantiles.add_metric([step, quantile], value)
    yield quantiles
    yield counts


def registry_for(state: State) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FactoryCollector(state))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
