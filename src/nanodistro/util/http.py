"""HTTP rules every nanodistro client follows (OCI registry, APK repositories, upstream monitor).

- Plain ``http://`` is allowed only to loopback hosts (``localhost``, 127.0.0.0/8, ``::1``)
  unless the user says ``insecure``: tests and local registries need it, anything else must not
  silently lose TLS (docker and crane treat loopback registries the same way).
- Retries use one exponential backoff: ``base``, ``2·base``, ``4·base``, … before retry 1, 2, 3.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = [
    "RETRY_STATUS",
    "backoff_delay",
    "call_with_retries",
    "is_loopback",
    "plain_http_allowed",
]

T = TypeVar("T")

#: Statuses worth asking again: rate limited or a server-side failure that may pass.
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ``::1`` (brackets allowed, as in a URL)."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plain_http_allowed(host: str, *, insecure: bool) -> bool:
    """Whether plain http may be spoken to ``host``: loopback, or the user said ``insecure``."""
    return insecure or is_loopback(host)


def backoff_delay(retry: int, base: float) -> float:
    """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
    return base * 2 ** (retry - 1)


def call_with_retries(
    call: Callable[[], T],
    *,
    attempts: int,
    backoff: float,
    retry_on: type[BaseException] | tuple[type[BaseException], ...],
    sleep: Callable[[float], None] | None = None,
) -> T:
    """Return ``call()``; an exception in ``retry_on`` is retried after :func:`backoff_delay`,
    up to ``attempts`` calls in all, and the last one is raised to the caller."""
    pause = sleep or time.sleep  # looked up per call, so a test may patch time.sleep
    attempts = max(attempts, 1)
    for attempt in range(attempts):
        if attempt:
            pause(backoff_delay(attempt, backoff))
        try:
            return call()
        except retry_on:
            if attempt + 1 == attempts:
                raise
    raise AssertionError("unreachable")  # the loop returns or raises
