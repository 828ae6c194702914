"""How fresh the catalog is, from the event log: for every package version, upstream release
-> published to staging -> promoted to stable -> first promoted image holding it.

The release time is the provider's published time where it has one (GitHub, PyPI...), else
when the factory first saw the release. Lead times are in seconds; p50/p95 (nearest rank) are
over every package version that reached the step.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from nanodistro.factory import events
from nanodistro.factory.records import packages, releases


@dataclass
class PackageFreshness:
    package: str
    version: str
    arch: str
    recipe: str
    released: datetime | None = None
    release_source: str = ""  # provider | first-seen | "" (no monitor)
    published: datetime | None = None
    promoted: datetime | None = None
    image_promoted: datetime | None = None
    images: list[str] = field(default_factory=list)

    def lead(self, until: datetime | None) -> float | None:
        if self.released is None or until is None:
            return None
        return round((until - self.released).total_seconds(), 3)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("released", "published", "promoted", "image_promoted"):
            value = getattr(self, key)
            data[key] = value.isoformat().replace("+00:00", "Z") if value else None
        data["release_to_published"] = self.lead(self.published)
        data["release_to_promoted"] = self.lead(self.promoted)
        data["release_to_image_promoted"] = self.lead(self.image_promoted)
        return data


@dataclass
class ImageFreshness:
    image: str
    digest: str
    promoted: datetime
    packages: list[str]  # name-version brought in by this promotion
    oldest_release: datetime | None = None  # of those packages

    def to_json(self) -> dict[str, Any]:
        lead = (
            round((self.promoted - self.oldest_release).total_seconds(), 3)
            if self.oldest_release
            else None
        )
        return {
            "image": self.image,
            "digest": self.digest,
            "promoted": self.promoted.isoformat().replace("+00:00", "Z"),
            "packages": self.packages,
            "release_to_image_promoted": lead,
        }


@dataclass
class VulnerabilityFreshness:
    """A vulnerability's clock: first matched by the factory's scan of stable -> the fixed
    package in stable -> the first stable image promoted with (or after) that fix."""

    vulnerability: str
    recipe: str
    detected: datetime
    fixed_version: str | None = None
    fixed: datetime | None = None  # the fix promoted to stable (vulnerability-fixed)
    image_promoted: datetime | None = None
    images: list[str] = field(default_factory=list)

    def lead(self, until: datetime | None) -> float | None:
        return round((until - self.detected).total_seconds(), 3) if until else None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("detected", "fixed", "image_promoted"):
            value = getattr(self, key)
            data[key] = value.isoformat().replace("+00:00", "Z") if value else None
        data["detected_to_fixed"] = self.lead(self.fixed)
        data["detected_to_image_promoted"] = self.lead(self.image_promoted)
        return data


@dataclass
class FreshnessReport:
    packages: list[PackageFreshness]
    images: list[ImageFreshness]
    vulnerabilities: list[VulnerabilityFreshness] = field(default_factory=list)

    def stats(self) -> dict[str, dict[str, float | None]]:
        steps = {
            "release_to_published": [p.lead(p.published) for p in self.packages],
            "release_to_promoted": [p.lead(p.promoted) for p in self.packages],
            "release_to_image_promoted": [p.lead(p.image_promoted) for p in self.packages],
            "vulnerability_to_fixed_image": [
                v.lead(v.image_promoted) for v in self.vulnerabilities
            ],
        }
        return {
            name: {
                "count": float(len([v for v in values if v is not None])),
                "p50": percentile([v for v in values if v is not None], 50),
                "p95": percentile([v for v in values if v is not None], 95),
            }
            for name, values in steps.items()
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "packages": [p.to_json() for p in self.packages],
            "images": [i.to_json() for i in self.images],
            "vulnerabilities": [v.to_json() for v in self.vulnerabilities],
            "stats": self.stats(),
        }


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def freshness(state: Any) -> FreshnessReport:
    from nanodistro.formats.pkginfo import apk_filename

    seen = releases(state)
    promoted_channel = [
        e for e in events.query(state, subject="channel:stable", types=[events.PROMOTED])
    ]
    promoted_images = [e for e in events.query(state, subject="image:", types=[events.PROMOTED])]
    rows = []
    for row in packages(state):
        upstream = row.version.rsplit("-r", 1)[0]
        item = PackageFreshness(
            row.name, row.version, row.arch, row.recipe, published=row.published_at
        )
        release = seen.get((row.recipe, upstream))
        if release is not None:
            item.released = release.published_at or release.first_seen
            item.release_source = "provider" if release.published_at else "first-seen"
        file = f"{row.arch}/{apk_filename(row.name, row.version)}"
        item.promoted = next(
            (e.time for e in promoted_channel if file in e.payload.get("packages", [])), None
        )
        wanted = f"{row.name}-{row.version}"
        holding = [e for e in promoted_images if wanted in e.payload.get("packages", [])]
        if holding:
            item.image_promoted = holding[0].time
            item.images = sorted({e.subject.split(":", 1)[1] for e in holding})
        rows.append(item)
    by_name_version = {f"{p.package}-{p.version}": p for p in rows}
    images = []
    for event in promoted_images:
        previous = set()
        for earlier in promoted_images:
            if earlier.id < event.id and earlier.subject == event.subject:
                previous = set(earlier.payload.get("packages", []))
        brought = sorted(set(event.payload.get("packages", [])) - previous)
        released = [p.released for n in brought if (p := by_name_version.get(n)) and p.released]
        images.append(
            ImageFreshness(
                image=event.subject.split(":", 1)[1],
                digest=str(event.payload.get("digest", "")),
                promoted=event.time,
                packages=brought,
                oldest_release=min(released) if released else None,
            )
        )
    return FreshnessReport(rows, images, _vulnerabilities(state, promoted_images))


def _vulnerabilities(state: Any, promoted_images: list[Any]) -> list[VulnerabilityFreshness]:
    fixes = {
        (e.subject, e.payload.get("recipe")): e
        for e in events.query(state, subject="vulnerability:", types=[events.VULNERABILITY_FIXED])
    }
    found = []
    for event in events.query(
        state, subject="vulnerability:", types=[events.VULNERABILITY_DETECTED]
    ):
        recipe = str(event.payload.get("recipe", ""))
        item = VulnerabilityFreshness(event.subject.split(":", 1)[1], recipe, event.time)
        fix = fixes.get((event.subject, recipe))
        if fix is not None:
            item.fixed, item.fixed_version = fix.time, fix.payload.get("version")
            at = fix.payload.get("repo_version") or 0
            holding = [e for e in promoted_images if (e.payload.get("version") or 0) >= at]
            if holding:
                item.image_promoted = holding[0].time
                item.images = sorted(
                    {e.subject.split(":", 1)[1] for e in holding if e.time == holding[0].time}
                )
        found.append(item)
    return found
