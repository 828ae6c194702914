"""release-monitoring.org (Anitya): API v2 ``/api/v2/versions/?project_id=N``.

As wolfictl (security.md §5.2): not ``projects/?id``; ``stable_versions`` unless pre-releases
are enabled; ``RELEASE_MONITOR_TOKEN`` is sent as ``Authorization: Token``. Anitya only dates
the latest version (``latest_version_created_on``).
"""

from __future__ import annotations

from typing import Any

from nanodistro.monitor.http import HttpClient, env_token
from nanodistro.monitor.models import UpstreamRelease
from nanodistro.monitor.providers.base import ProviderConfig, expect, parse_time
from nanodistro.recipe.update import UpdateConfig

KIND = "release_monitoring"


def block(update: UpdateConfig) -> Any:
    return update.release_monitor


async def versions(config: ProviderConfig, client: HttpClient) -> list[UpstreamRelease]:
    assert config.update.release_monitor is not None
    project = config.update.release_monitor.identifier
    url = f"{config.endpoints.release_monitoring}/api/v2/versions/?project_id={project}"
    token = env_token("RELEASE_MONITOR_TOKEN")
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Token {token}"
    document = (await client.get(url, headers=headers)).json()
    expect(
        isinstance(document, dict) and isinstance(document.get("versions"), list),
        url,
        'an object with "versions"',
    )
    stable = document.get("stable_versions")
    stable_set = set(stable) if isinstance(stable, list) else set(document["versions"])
    latest = document.get("latest_version")
    latest_time = parse_time(document.get("latest_version_created_on"))
    return [
        UpstreamRelease(
            version=str(v),
            published_at=latest_time if v == latest else None,
            prerelease=v not in stable_set,
        )
        for v in document["versions"]
    ]
