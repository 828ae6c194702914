"""OCI: the tags of an image repository (melange ``update.oci``; distribution spec tags/list).

``identifier`` is an image reference (``cgr.dev/org/image``, ``docker.io/library/alpine``);
the tag list comes from nanodistro's registry client, which handles bearer-token challenges,
Docker Hub naming and ``Link`` pagination. Tags carry no dates.
"""

from __future__ import annotations

import asyncio
from typing import Any

from nanodistro.errors import MonitorError, RegistryError
from nanodistro.monitor.http import HttpClient
from nanodistro.monitor.models import UpstreamRelease
from nanodistro.monitor.providers.base import ProviderConfig
from nanodistro.recipe.update import UpdateConfig
from nanodistro.registry.client import RegistryClient
from nanodistro.registry.reference import parse_reference

KIND = "oci"


def block(update: UpdateConfig) -> Any:
    return update.oci


def _tags(identifier: str) -> list[str]:
    try:
        reference = parse_reference(identifier)
        with RegistryClient(reference.api_host) as registry:
            return registry.list_tags(reference.repository)
    except RegistryError as error:
        raise MonitorError(str(error), field="update.oci.identifier") from None


async def versions(config: ProviderConfig, client: HttpClient) -> list[UpstreamRelease]:
    assert config.update.oci is not None
    # The registry client is synchronous; keep the event loop free for the other recipes.
    tags = await asyncio.to_thread(_tags, config.update.oci.identifier)
    return [UpstreamRelease(version=tag) for tag in tags]
