"""PyPI: the JSON API ``/pypi/<project>/json`` (https://docs.pypi.org/api/json/).

Each release lists its files with upload times; a release whose files are all yanked (or that
has no files) is skipped. The release time is the earliest upload, the checksum the sdist's.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from nanodistro.monitor.http import HttpClient
from nanodistro.monitor.models import UpstreamRelease
from nanodistro.monitor.providers.base import ProviderConfig, expect, parse_time
from nanodistro.recipe.update import UpdateConfig

KIND = "pypi"


def block(update: UpdateConfig) -> Any:
    return update.pypi


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
        sdist = next((f for f in live if f.get("packagetype") == "sdist"), live[0])
        sha256 = (sdist.get("digests") or {}).get("sha256")
        releases.append(
            UpstreamRelease(
                version=str(version),
                published_at=min(times) if times else None,
                url=sdist.get("url"),
                checksum=f"sha256:{sha256}" if sha256 else None,
            )
        )
    return releases
