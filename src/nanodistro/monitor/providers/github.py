"""GitHub: REST ``/repos/<org>/<repo>/releases`` or, with ``use-tag``, ``/tags``.

wolfictl used GraphQL (security.md §5.2); REST answers the same questions without a token for
public repositories, and supports conditional requests (a 304 does not count against the rate
limit). Drafts are skipped and pre-releases flagged, like wolfictl. ``GITHUB_TOKEN`` is sent when set.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from nanodistro.errors import MonitorError
from nanodistro.monitor.http import HttpClient, env_token
from nanodistro.monitor.models import UpstreamRelease
from nanodistro.monitor.providers.base import ProviderConfig, expect, paginate, parse_time
from nanodistro.recipe.update import UpdateConfig

KIND = "github"
_SHA = re.compile(r"^[0-9a-fA-F]{40}$")


def block(update: UpdateConfig) -> Any:
    return update.github


def _headers() -> dict[str, str]:
    headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
    token = env_token("GITHUB_TOKEN", "GH_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _repo(config: ProviderConfig) -> str:
    assert config.update.github is not None
    identifier = config.update.github.identifier.strip("/")
    if identifier.count("/") != 1:
        raise MonitorError(
            f"expected 'org/repo', got {identifier!r}", field="update.github.identifier"
        )
    return "/".join(quote(part) for part in identifier.split("/"))


async def _tags(config: ProviderConfig, client: HttpClient) -> list[UpstreamRelease]:
    base = f"{config.endpoints.github_api}/repos/{_repo(config)}"
    url = f"{base}/tags?per_page=100"
    tags = await paginate(client, url, headers=_headers(), max_pages=config.max_pages)
    releases = []
    for tag in tags:
        expect(isinstance(tag, dict) and "name" in tag, url, "tag objects with a name")
        sha = (tag.get("commit") or {}).get("sha")
        releases.append(
            UpstreamRelease(
                version=str(tag["name"]),
                commit=sha if isinstance(sha, str) and _SHA.match(sha) else None,
                url=tag.get("tarball_url"),
            )
        )
    return releases


async def versions(config: ProviderConfig, client: HttpClient) -> list[UpstreamRelease]:
    assert config.update.github is not None
    if config.update.github.use_tag:
        return await _tags(config, client)
    url = f"{config.endpoints.github_api}/repos/{_repo(config)}/releases?per_page=100"
    items = await paginate(client, url, headers=_headers(), max_pages=config.max_pages)
    releases = []
    for item in items:
        expect(isinstance(item, dict) and "tag_name" in item, url, "release objects with tag_name")
        if item.get("draft"):
            continue
        releases.append(
            UpstreamRelease(
                version=str(item["tag_name"]),
                published_at=parse_time(item.get("published_at") or item.get("created_at")),
                url=item.get("html_url"),
                prerelease=bool(item.get("prerelease")),
            )
        )
    if config.want_commits and releases:
        commits = {r.version: r.commit for r in await _tags(config, client)}
        releases = [
            UpstreamRelease(
                version=r.version,
                published_at=r.published_at,
                url=r.url,
                prerelease=r.prerelease,
                commit=commits.get(r.version),
            )
            for r in releases
        ]
    return releases


async def enrich(
    config: ProviderConfig, client: HttpClient, release: UpstreamRelease
) -> UpstreamRelease:
    """Tags carry no date: look up the commit time of the chosen one."""
    if release.published_at is not None or not release.commit:
        return release
    url = f"{config.endpoints.github_api}/repos/{_repo(config)}/commits/{release.commit}"
    document = (await client.get(url, headers=_headers())).json()
    commit = document.get("commit") if isinstance(document, dict) else None
    when = None
    if isinstance(commit, dict):
        when = parse_time((commit.get("committer") or {}).get("date"))
    return UpstreamRelease(
        version=release.version,
        published_at=when,
        commit=release.commit,
        url=release.url,
        checksum=release.checksum,
        prerelease=release.prerelease,
    )
