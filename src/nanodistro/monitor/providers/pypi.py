"""PyPI: the JSON API ``/pypi/<project>/json`` (https://docs.pypi.org/api/json/).

Each release lists its files with upload times; a release whose files are all yanked (or that
has no files) is skipped. The release time is the earliest upload, the URL and checksum the
sdist's. A release with wheels but no sdist has nothing a recipe can build from: it is kept with
``has_source=False`` so the monitor can say "no source release" instead of offering it.

``bump`` needs the new version's sdist: its path on files.pythonhosted.org holds a content hash,
so substituting the version into the old URL 404s. :func:`source_file` asks the per-version API
(``/pypi/<project>/<version>/json``) for the real URL and sha256.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote, urlsplit

from nanodistro.errors import FetchError, MonitorError
from nanodistro.monitor.http import HttpClient
from nanodistro.monitor.models import UpstreamRelease
from nanodistro.monitor.providers.base import Endpoints, ProviderConfig, expect, parse_time
from nanodistro.recipe.update import UpdateConfig

KIND = "pypi"

# Hosts whose URLs are PyPI's files: a fetch from one of them is the sdist bump replaces.
PYPI_FILE_HOSTS = frozenset(
    {"files.pythonhosted.org", "pypi.org", "pypi.io", "pypi.python.org", "pythonhosted.org"}
)


def block(update: UpdateConfig) -> Any:
    return update.pypi


def _sdist(files: list[Any]) -> dict[str, Any] | None:
    live = [f for f in files if isinstance(f, dict) and not f.get("yanked")]
    return next((f for f in live if f.get("packagetype") == "sdist"), None)


async def versions(config: ProviderConfig, client: HttpClient) -> list[UpstreamRelease]:
    assert config.update.pypi is not None
    url = f"{config.endpoints.pypi}/pypi/{quote(config.update.pypi.identifier)}/json"
    document = (await client.get(url, headers={"Accept": "application/json"})).json()
    expect(
        isinstance(document, dict) and isinstance(document.get("releases"), dict),
        url,
        'an object with "releases"',
    )
    releases: list[UpstreamRelease] = []
    for version, files in document["releases"].items():
        if not isinstance(files, list):
            continue
        live = [f for f in files if isinstance(f, dict) and not f.get("yanked")]
        if not live:
            continue
        times = [t for f in live if (t := parse_time(f.get("upload_time_iso_8601")))]
        sdist = _sdist(live)
        sha256 = (sdist.get("digests") or {}).get("sha256") if sdist else None
        releases.append(
            UpstreamRelease(
                version=str(version),
                published_at=min(times) if times else None,
                url=sdist.get("url") if sdist else None,
                checksum=f"sha256:{sha256}" if sha256 else None,
                has_source=sdist is not None,
            )
        )
    return releases


async def source_file_async(
    project: str, version: str, client: HttpClient, *, endpoints: Endpoints
) -> tuple[str, str]:
    """``(url, sha256)`` of ``project``'s sdist for ``version``; ``MonitorError`` when PyPI has
    no such version or the version has no sdist."""
    url = f"{endpoints.pypi}/pypi/{quote(project)}/{quote(version)}/json"
    try:
        document = (await client.get(url, headers={"Accept": "application/json"})).json()
    except FetchError as error:
        if "HTTP 404" in error.message:
            raise MonitorError(f"PyPI has no version {version} of {project}", where=url) from None
        raise
    expect(
        isinstance(document, dict) and isinstance(document.get("urls"), list),
        url,
        'an object with "urls"',
    )
    sdist = _sdist(document["urls"])
    if sdist is None:
        raise MonitorError(
            f"no source release: {project} {version} has only built files (wheels) on PyPI, "
            "no sdist to build from",
            where=url,
        )
    file_url, sha256 = sdist.get("url"), (sdist.get("digests") or {}).get("sha256")
    expect(
        isinstance(file_url, str) and isinstance(sha256, str) and len(sha256) == 64,
        url,
        "an sdist with a url and a sha256 digest",
    )
    return str(file_url), str(sha256).lower()


def source_file(
    project: str, version: str, *, endpoints: Endpoints | None = None, insecure: bool = False
) -> tuple[str, str]:
    """:func:`source_file_async` for synchronous callers (``bump``)."""

    async def ask() -> tuple[str, str]:
        async with HttpClient(insecure=insecure) as client:
            return await source_file_async(
                project, version, client, endpoints=endpoints or Endpoints.from_env()
            )

    return asyncio.run(ask())


def is_pypi_file_url(uri: str, endpoints: Endpoints) -> bool:
    """Whether ``uri`` is on PyPI's file hosts (or the configured PyPI endpoint's host)."""
    host = urlsplit(uri).hostname or ""
    return host in PYPI_FILE_HOSTS or host == (urlsplit(endpoints.pypi).hostname or "")


def templated_uri(raw_uri: str, url: str, version: str) -> str:
    """``url`` written the way the recipe wrote its old one: when that used
    ``${{package.version}}``, the version in the file name becomes the variable again."""
    marker = "${{package.version}}"
    head, _, name = url.rpartition("/")
    if marker not in raw_uri or version not in name:
        return url
    return f"{head}/{name.replace(version, marker)}"
