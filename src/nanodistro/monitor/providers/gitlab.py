"""GitLab: REST ``/projects/<id>/releases`` or, with ``use-tag``, ``/repository/tags`` (API v4).

``GITLAB_TOKEN`` is sent as ``PRIVATE-TOKEN`` when set. Upcoming releases are skipped.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from nanodistro.monitor.http import HttpClient, env_token
from nanodistro.monitor.models import UpstreamRelease
from nanodistro.monitor.providers.base import ProviderConfig, expect, paginate, parse_time
from nanodistro.recipe.update import UpdateConfig

KIND = "gitlab"


def block(update: UpdateConfig) -> Any:
    return update.gitlab


def _headers() -> dict[str, str]:
    token = env_token("GITLAB_TOKEN")
    return {"PRIVATE-TOKEN": token} if token else {}


async def versions(config: ProviderConfig, client: HttpClient) -> list[UpstreamRelease]:
    assert config.update.gitlab is not None
    project = quote(config.update.gitlab.identifier.strip("/"), safe="")
    base = f"{config.endpoints.gitlab_api}/projects/{project}"
    if config.update.gitlab.use_tag:
        url = f"{base}/repository/tags?per_page=100"
        tags = await paginate(client, url, headers=_headers(), max_pages=config.max_pages)
        releases = []
        for tag in tags:
            expect(isinstance(tag, dict) and "name" in tag, url, "tag objects with a name")
            commit = tag.get("commit") if isinstance(tag.get("commit"), dict) else {}
            releases.append(
                UpstreamRelease(
                    version=str(tag["name"]),
                    published_at=parse_time(
                        tag.get("created_at")
                        or commit.get("committed_date")
                        or commit.get("created_at")
                    ),
                    commit=commit.get("id"),
                )
            )
        return releases
    url = f"{base}/releases?per_page=100"
    items = await paginate(client, url, headers=_headers(), max_pages=config.max_pages)
    releases = []
    for item in items:
        expect(isinstance(item, dict) and "tag_name" in item, url, "release objects with tag_name")
        if item.get("upcoming_release"):
            continue
        commit = item.get("commit") if isinstance(item.get("commit"), dict) else {}
        links = item.get("_links") if isinstance(item.get("_links"), dict) else {}
        releases.append(
            UpstreamRelease(
                version=str(item["tag_name"]),
                published_at=parse_time(item.get("released_at") or item.get("created_at")),
                commit=commit.get("id"),
                url=links.get("self"),
            )
        )
    return releases
