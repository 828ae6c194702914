"""What every provider module offers, and the configuration it receives."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from nanodistro.errors import MonitorError
from nanodistro.monitor.http import HttpClient
from nanodistro.monitor.models import RecipeTarget, UpstreamRelease
from nanodistro.recipe.update import UpdateConfig


@dataclass(frozen=True)
class Endpoints:
    """Base URLs of the upstream services; tests point them at 127.0.0.1."""

    pypi: str = "https://pypi.org"
    npm: str = "https://registry.npmjs.org"
    github_api: str = "https://api.github.com"
    gitlab_api: str = "https://gitlab.com/api/v4"
    release_monitoring: str = "https://release-monitoring.org"
    # Empty: the host's apt mirror (providers/debian.py); NANODISTRO_DEBIAN_URL overrides.
    debian: str = ""

    @classmethod
    def from_env(cls) -> Endpoints:
        """Defaults, overridden by ``NANODISTRO_<SERVICE>_URL`` variables (e.g. a PyPI mirror)."""
        values: dict[str, str] = {}
        for name in cls.__dataclass_fields__:
            value = os.environ.get(f"NANODISTRO_{name.upper()}_URL")
            if value:
                values[name] = value.rstrip("/")
        return cls(**values)


@dataclass(frozen=True)
class ProviderConfig:
    """Everything a provider needs: the recipe, its ``update:`` block and where upstreams live."""

    target: RecipeTarget
    update: UpdateConfig
    endpoints: Endpoints = field(default_factory=Endpoints)
    # Resolve each release's commit even when it costs an extra request (re-tag detection).
    want_commits: bool = False
    max_pages: int = 5


class Provider(Protocol):
    """A provider module: ``KIND``, ``block(update)`` and ``versions(config, client)``."""

    KIND: str

    def block(self, update: UpdateConfig) -> Any:
        """The provider's own sub-block of ``update:`` (filters, identifier)."""

    async def versions(self, config: ProviderConfig, client: HttpClient) -> list[UpstreamRelease]:
        """All releases upstream lists, raw names, newest first where the upstream says so."""


def parse_time(value: Any) -> datetime | None:
    """ISO 8601 (with ``Z``) or epoch seconds to an aware datetime; None when absent/unreadable."""
    if value is None or value == "":
        return None
    try:
        if isinstance(value, int | float):
            return datetime.fromtimestamp(float(value), tz=UTC)
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def expect(condition: bool, url: str, what: str) -> None:
    """Fail with a clear message when an upstream answer does not have the expected shape."""
    if not condition:
        raise MonitorError(f"unexpected response shape: expected {what}", where=url)


_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


async def paginate(
    client: HttpClient, url: str, *, headers: dict[str, str], max_pages: int
) -> list[Any]:
    """Concatenate the JSON arrays of ``url`` and its ``Link: rel="next"`` pages (GitHub, GitLab)."""
    items: list[Any] = []
    next_url: str | None = url
    pages = 0
    while next_url and pages < max_pages:
        response = await client.get(next_url, headers=headers)
        page = response.json()
        expect(isinstance(page, list), next_url, "a JSON array")
        items.extend(page)
        pages += 1
        link = next((v for k, v in response.headers.items() if k.lower() == "link"), "")
        match = _NEXT_LINK.search(link)
        next_url = match.group(1) if match else None
    return items
