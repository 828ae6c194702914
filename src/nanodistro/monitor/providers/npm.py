"""npm: the registry's package document ``/<name>`` (versions, ``time``, ``dist-tags``).

Deprecated versions are skipped; semver pre-releases (``1.0.0-beta.1``) are flagged.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from nanodistro.monitor.http import HttpClient
from nanodistro.monitor.models import UpstreamRelease
from nanodistro.monitor.providers.base import ProviderConfig, expect, parse_time
from nanodistro.recipe.update import UpdateConfig

KIND = "npm"


def block(update: UpdateConfig) -> Any:
    return update.npm


async def versions(config: ProviderConfig, client: HttpClient) -> list[UpstreamRelease]:
    assert config.update.npm is not None
    # Scoped names keep their "@" and encode the slash, as the npm client does.
    name = quote(config.update.npm.identifier, safe="@")
    url = f"{config.endpoints.npm}/{name}"
    document = (await client.get(url, headers={"Accept": "application/json"})).json()
    expect(
        isinstance(document, dict) and isinstance(document.get("versions"), dict),
        url,
        'a package document with "versions"',
    )
    times = document.get("time") if isinstance(document.get("time"), dict) else {}
    releases: list[UpstreamRelease] = []
    for version, manifest in document["versions"].items():
        if not isinstance(manifest, dict) or manifest.get("deprecated"):
            continue
        dist: dict[str, Any] = manifest["dist"] if isinstance(manifest.get("dist"), dict) else {}
        integrity = dist.get("integrity") or (
            f"sha1:{dist['shasum']}" if dist.get("shasum") else None
        )
        releases.append(
            UpstreamRelease(
                version=str(version),
                published_at=parse_time(times.get(version)),
                url=dist.get("tarball"),
                checksum=integrity,
                commit=manifest.get("gitHead"),
                prerelease="-" in str(version),
            )
        )
    return releases
