"""OCI: the tags of an image repository (melange ``update.oci``; distribution spec tags/list).

``identifier`` is an image reference (``cgr.dev/org/image``, ``docker.io/library/alpine``);
the tag list comes from nanodistro's registry client, which handles bearer-token challenges,
Docker Hub naming and ``Link`` pagination. Tags carry no dates.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from nanodistro.errors import MonitorError, RegistryError
from nanodistro.monitor.http import HttpClient, note_request
from nanodistro.monitor.models import UpstreamRelease
from nanodistro.monitor.providers.base import ProviderConfig
from nanodistro.recipe.update import UpdateConfig
from nanodistro.registry.client import RegistryClient
from nanodistro.registry.reference import parse_reference

KIND = "oci"

T = TypeVar("T")


def block(update: UpdateConfig) -> Any:
    return update.oci


def _tags(identifier: str, timeout: float) -> list[str]:
    try:
        reference = parse_reference(identifier)
        with RegistryClient(reference.api_host, timeout=timeout) as registry:
            return registry.list_tags(reference.repository)
    except RegistryError as error:
        raise MonitorError(str(error), field="update.oci.identifier") from None


async def _in_daemon_thread(call: Callable[[], T]) -> T:
    """``call()`` on a daemon thread the caller may stop waiting for.

    Unlike ``asyncio.to_thread``, a recipe that hits its deadline does not keep the monitor
    alive: ``asyncio.run`` joins the default executor's threads, never a daemon thread.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def deliver(result: T | None, error: BaseException | None) -> None:
        if future.done():  # the recipe stopped waiting (deadline)
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def work() -> None:
        result: T | None = None
        error: BaseException | None = None
        try:
            result = call()
        except BaseException as failure:  # handed to the awaiting task
            error = failure
        # The loop is gone when the monitor finished without this answer: nobody waits for it.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(deliver, result, error)

    threading.Thread(target=work, name="monitor-oci", daemon=True).start()
    return await future


async def versions(config: ProviderConfig, client: HttpClient) -> list[UpstreamRelease]:
    assert config.update.oci is not None
    identifier = config.update.oci.identifier
    note_request(identifier)
    # The registry client is synchronous; keep the event loop free for the other recipes.
    tags = await _in_daemon_thread(lambda: _tags(identifier, client.request_timeout))
    return [UpstreamRelease(version=tag) for tag in tags]
