"""A web page (typically a download directory listing) scanned with a regular expression.

``pattern`` is searched over the whole page; the version is the group named ``version`` or the
first group. Each match's ``url`` is the page URL (links are not resolved).
"""

from __future__ import annotations

import re
from typing import Any

from nanodistro.errors import MonitorError
from nanodistro.monitor.http import HttpClient
from nanodistro.monitor.models import UpstreamRelease
from nanodistro.monitor.providers.base import ProviderConfig
from nanodistro.recipe.substitute import substitute
from nanodistro.recipe.update import UpdateConfig

KIND = "http_regex"


def block(update: UpdateConfig) -> Any:
    return update.http_regex


def _substitute(text: str, config: ProviderConfig) -> str:
    return substitute(text, {"package.name": config.target.name}, keep_unknown=True)


async def versions(config: ProviderConfig, client: HttpClient) -> list[UpstreamRelease]:
    spec = config.update.http_regex
    assert spec is not None
    try:
        regex = re.compile(_substitute(spec.pattern, config))
    except re.error as error:
        raise MonitorError(
            f"invalid regular expression: {error}", field="update.http-regex.pattern"
        ) from None
    if regex.groups < 1:
        raise MonitorError(
            "the pattern needs a capture group for the version", field="update.http-regex.pattern"
        )
    url = _substitute(spec.url, config)
    page = (await client.get(url)).text
    group: str | int = "version" if "version" in regex.groupindex else 1
    found: dict[str, None] = {}
    for match in regex.finditer(page):
        if match.group(group):
            found.setdefault(match.group(group), None)
    return [UpstreamRelease(version=v, url=url) for v in found]
