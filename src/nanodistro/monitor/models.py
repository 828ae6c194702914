"""Plain data the monitor passes around: upstream releases, what a recipe says, check results."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from nanodistro.recipe.update import UpdateConfig


@dataclass(frozen=True)
class UpstreamRelease:
    """One release as an upstream lists it.

    ``version`` is the raw upstream name (tag, release or version string) before the recipe's
    filters and transforms; ``checksum`` is an artifact digest (``sha256:<hex>``) when the
    upstream publishes one, used with ``commit`` to notice a re-tag.
    """

    version: str
    published_at: datetime | None = None
    commit: str | None = None
    url: str | None = None
    checksum: str | None = None
    prerelease: bool = False
    # False: only built files upstream (a PyPI release with wheels but no sdist); reported as
    # "no source release", never offered as an update (a recipe builds from source).
    has_source: bool = True


@dataclass(frozen=True)
class Candidate:
    """A release after the recipe's filter chain: ``version`` is what ``package.version`` would be."""

    version: str
    release: UpstreamRelease


@dataclass(frozen=True)
class GitCheckout:
    """The parts of a ``git-checkout`` step the monitor needs."""

    repository: str
    tag: str | None = None
    expected_commit: str | None = None


@dataclass
class RecipeTarget:
    """What the monitor needs to know about one recipe."""

    name: str
    version: str
    epoch: int
    path: Path | None
    update: UpdateConfig | None
    git_checkouts: list[GitCheckout] = field(default_factory=list)
    vars: dict[str, str] = field(default_factory=dict)
    var_transforms: list[dict[str, str]] = field(default_factory=list)


# Statuses of a check, in the order a report lists them.
UP_TO_DATE = "up-to-date"
UPDATE = "update"
RETAGGED = "retagged"
DISABLED = "disabled"
SCHEDULED = "skipped-schedule"
NO_MONITOR = "no-monitor"
ERROR = "error"


@dataclass
class CheckResult:
    """The outcome of checking one recipe against its upstream."""

    name: str
    current: str
    status: str
    kind: str | None = None
    latest: str | None = None
    latest_published_at: datetime | None = None
    latest_commit: str | None = None
    latest_url: str | None = None
    next_version: str | None = None
    manual: bool = False
    message: str | None = None
    path: Path | None = None
    candidates: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path) if self.path else None,
            "current": self.current,
            "latest": self.latest,
            "latest_published_at": (
                self.latest_published_at.isoformat() if self.latest_published_at else None
            ),
            "latest_commit": self.latest_commit,
            "latest_url": self.latest_url,
            "next": self.next_version,
            "status": self.status,
            "kind": self.kind,
            "manual": self.manual,
            "message": self.message,
            "candidates": self.candidates,
        }
