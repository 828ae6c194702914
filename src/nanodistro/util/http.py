"""HTTP rules every nanodistro client follows (OCI registry, APK repositories, upstream monitor).

- Plain ``http://`` is allowed only to loopback hosts (``localhost``, 127.0.0.0/8, ``::1``)
  unless the user says ``insecure``: tests and local registries need it, anything else must not
  silently lose TLS (docker and crane treat loopback registries the same way). The rule holds
  for every redirect hop too (:func:`check_plain_http`, :func:`redirect_guard`): a server must
  not be able to move a client onto plain http that it would refuse to ask directly.
- Retries use one exponential backoff: ``base``, ``2·base``, ``4·base``, … before retry 1, 2, 3.
"""

from __future__ import annotations

import ipaddress
import re
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from nanodistro.errors import FetchError

if TYPE_CHECKING:
    import httpx

__all__ = [
    "RETRY_STATUS",
    "async_redirect_guard",
    "backoff_delay",
    "call_with_retries",
    "check_plain_http",
    "describe_http_error",
    "is_loopback",
    "plain_http_allowed",
    "redirect_guard",
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


def check_plain_http(url: str, *, insecure: bool, redirected_from: str | None = None) -> None:
    """Raise ``FetchError`` when ``url`` is plain http to a host :func:`plain_http_allowed` refuses.

    ``redirected_from`` is the URL whose answer pointed at ``url``; the error then names both
    (``where`` is the URL the caller asked for, the message names the refused target).
    """
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme.lower() != "http" or plain_http_allowed(
        parsed.hostname or "", insecure=insecure
    ):
        return
    if redirected_from is None:
        raise FetchError(
            "refusing plain http to a non-loopback host (use https, or --insecure)", where=url
        )
    raise FetchError(
        f"refusing redirect to {url}: plain http to a non-loopback host (use https, or --insecure)",
        where=redirected_from,
    )


def _check_redirect(response: httpx.Response, insecure: bool) -> None:
    if not response.has_redirect_location:
        return
    source = response.request.url
    target = source.join(response.headers["Location"])
    check_plain_http(str(target), insecure=insecure, redirected_from=str(source))


def redirect_guard(*, insecure: bool) -> Callable[[httpx.Response], None]:
    """An httpx ``response`` event hook re-checking the plain-http rule on every redirect hop.

    Use as ``httpx.Client(event_hooks={"response": [redirect_guard(insecure=...)]})``; httpx
    runs response hooks before it follows a redirect, so a refused hop is never requested.
    """

    def hook(response: httpx.Response) -> None:
        _check_redirect(response, insecure)

    return hook


def async_redirect_guard(*, insecure: bool) -> Callable[[httpx.Response], Awaitable[None]]:
    """:func:`redirect_guard` for ``httpx.AsyncClient`` (whose hooks must be coroutines)."""

    async def hook(response: httpx.Response) -> None:
        _check_redirect(response, insecure)

    return hook


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


# What an httpx failure means, in words: users see these, never the exception class names
# (``ConnectError``, ``ReadTimeout``…), which say nothing to someone who did not write the code.
_HTTP_FAILURES: tuple[tuple[str, str], ...] = (
    ("ConnectTimeout", "timed out connecting"),
    ("ReadTimeout", "timed out waiting for the answer"),
    ("WriteTimeout", "timed out sending the request"),
    ("PoolTimeout", "timed out waiting for a free connection"),
    ("TimeoutException", "timed out"),
    ("ConnectError", "cannot connect"),
    ("ReadError", "connection lost while reading the answer"),
    ("WriteError", "connection lost while sending the request"),
    ("CloseError", "connection failed while closing"),
    ("RemoteProtocolError", "the server broke the HTTP protocol"),
    ("LocalProtocolError", "invalid HTTP request"),
    ("ProxyError", "the proxy refused the request"),
    ("UnsupportedProtocol", "unsupported URL scheme"),
    ("TooManyRedirects", "too many redirects"),
    ("InvalidURL", "invalid URL"),
    ("DecodingError", "the answer cannot be decoded"),
    ("StreamError", "the answer was read twice or after closing"),
)


# A name that does not resolve and a host without a network look the same from here (getaddrinfo
# fails with EAI_NONAME or EAI_AGAIN, or the route is missing): say both, and which host.
_UNREACHABLE = re.compile(
    r"name or service not known|temporary failure in name resolution|no address associated"
    r"|nodename nor servname|getaddrinfo failed|name resolution|network is unreachable"
    r"|no route to host",
    re.IGNORECASE,
)


def _host_of(error: BaseException, url: str | None) -> str | None:
    if url:
        return urllib.parse.urlsplit(url).hostname
    try:
        request = error.request  # type: ignore[attr-defined]  # httpx sets it when sent
    except (AttributeError, RuntimeError):  # httpx raises RuntimeError when it has none
        return None
    return str(request.url.host) or None


def describe_http_error(error: BaseException, url: str | None = None) -> str:
    """A one-line description of an httpx (or socket) failure without Python class names:
    ``cannot connect to HOST: connection refused``, ``timed out waiting for the answer``, ``cannot
    reach HOST (no network or name not found)``. ``url`` names the host when the error
    does not carry its request."""
    chain = [error, *(e for e in (error.__cause__, error.__context__) if e is not None)]
    if any(_UNREACHABLE.search(str(e)) for e in chain):
        host = _host_of(error, url)
        return f"cannot reach {host or 'the server'} (no network or name not found)"
    names = [cls.__name__ for cls in type(error).__mro__]
    what = next((text for name, text in _HTTP_FAILURES if name in names), "request failed")
    host = _host_of(error, url) if what in ("cannot connect", "timed out connecting") else None
    if host:  # which server refused or did not answer, when several are involved
        what = f"{what} to {host}"
    # "[Errno 111] Connection refused" -> "connection refused"; nested reasons often repeat it
    detail = re.sub(r"\[Errno -?\d+\]\s*", "", str(error)).strip()
    detail = detail[:1].lower() + detail[1:]
    if not detail or detail.lower() in what:
        return what
    return f"{what}: {detail}"
