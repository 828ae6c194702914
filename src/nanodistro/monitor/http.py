"""The monitor's HTTP client: bounded per-host concurrency, retries, conditional requests.

Upstream APIs are polled often and rate-limit hard, so every GET goes through here:
- at most ``per_host`` requests in flight per host;
- 5xx, 429, timeouts and connection errors are retried with exponential backoff (as wolfictl
  does for release-monitoring.org: 1 s, 2 s, 4 s; the statuses and delays of util/http.py),
  honouring a numeric ``Retry-After``. This loop stays here rather than in
  ``util.http.call_with_retries`` because it is async and decides on statuses, not exceptions;
- responses carrying an ``ETag`` or ``Last-Modified`` are stored on disk and revalidated with
  ``If-None-Match`` / ``If-Modified-Since``; a 304 answers from the stored body;
- one deadline per GET (``request_timeout``, default :data:`REQUEST_TIMEOUT`) covers all its
  attempts and every read: httpx's timeouts are per read, so a server trickling one byte at a
  time would otherwise hold the monitor forever;
- plain http only to loopback unless ``insecure``, on the first URL and every redirect hop
  (util/http.py); JSON answers nested too deeply for the parser are an error naming the URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import json
import os
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from nanodistro.errors import FetchError
from nanodistro.monitor.defaults import REQUEST_TIMEOUT
from nanodistro.util.http import (
    RETRY_STATUS,
    async_redirect_guard,
    backoff_delay,
    check_plain_http,
    describe_http_error,
)

USER_AGENT = "nanodistro-monitor/0.1 (+https://github.com/nanodistro)"
# REQUEST_TIMEOUT (seconds one GET may take in all) lives in monitor/defaults.py.
#: Version of the on-disk form of cached answers; entries of another form are misses.
CACHE_FORMAT = 2

# What the current recipe asked for last (a URL, a git repository): a recipe that runs out of
# time is reported with it. ``check.py`` gives each recipe its own list.
_asked: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "monitor_asked", default=None
)


# The current recipe's deadline (``check.py``): time spent queueing for a host's free slot is
# added back to it, so a recipe is only charged for waiting on its own requests.
_deadline: contextvars.ContextVar[asyncio.Timeout | None] = contextvars.ContextVar(
    "monitor_deadline", default=None
)
# Set by the response hook when the current request's answer (status and headers) arrived.
_answered: contextvars.ContextVar[list[bool] | None] = contextvars.ContextVar(
    "monitor_answered", default=None
)


def track_requests(deadline: asyncio.Timeout | None = None) -> list[str]:
    """Start recording, for the current task, what :func:`note_request` is told; ``deadline``
    is the recipe's, moved later by the time its requests queue behind other recipes'."""
    asked: list[str] = []
    _asked.set(asked)
    _deadline.set(deadline)
    return asked


@contextlib.asynccontextmanager
async def _deadline_paused() -> AsyncIterator[None]:
    """Stop the current recipe's deadline clock inside the block (it keeps what was left)."""
    deadline = _deadline.get()
    when = deadline.when() if deadline is not None else None
    if deadline is None or when is None:
        yield
        return
    loop = asyncio.get_running_loop()
    left = when - loop.time()
    deadline.reschedule(None)
    try:
        yield
    finally:
        with contextlib.suppress(RuntimeError):  # the recipe's check already ended
            deadline.reschedule(loop.time() + left)


async def _mark_answered(response: httpx.Response) -> None:
    answered = _answered.get()
    if answered is not None:
        answered[0] = True


def note_request(target: str) -> None:
    """Record that the current recipe is now waiting on ``target`` (a URL or repository)."""
    asked = _asked.get()
    if asked is not None:
        asked.append(target)


@dataclass(frozen=True)
class Response:
    """A completed GET: status, final URL, headers and body (from cache on a 304)."""

    url: str
    status: int
    headers: Mapping[str, str]
    body: bytes
    from_cache: bool = False

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as error:
            raise FetchError(f"expected a JSON document, got: {error}", where=self.url) from None
        except RecursionError:
            # The C parser recurses once per level and stops at the interpreter's recursion
            # limit (~1000 levels); no upstream API nests more than a handful.
            raise FetchError(
                "JSON document nested too deeply (more levels than the parser allows)",
                where=self.url,
            ) from None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


class HttpClient:
    """Async GETs for providers. Use as ``async with HttpClient(...) as client``."""

    def __init__(
        self,
        *,
        cache_dir: Path | None = None,
        per_host: int = 4,
        retries: int = 3,
        backoff: float = 1.0,
        timeout: float = 30.0,
        request_timeout: float = REQUEST_TIMEOUT,
        silent_after: float | None = None,
        insecure: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._cache_dir = cache_dir
        self._per_host = per_host
        self._retries = retries
        self._backoff = backoff
        self.request_timeout = request_timeout
        # A host that sends nothing back (not even a status line) for this long is silent:
        # the rest of the run does not ask it again (see :meth:`get`).
        self.silent_after = min(request_timeout, silent_after or request_timeout)
        self.insecure = insecure
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self._silent: dict[str, float] = {}
        self._client = httpx.AsyncClient(
            timeout=min(timeout, request_timeout),
            follow_redirects=True,
            headers={"User-Agent": USER_AGENT},
            transport=transport,
            event_hooks={"response": [async_redirect_guard(insecure=insecure), _mark_answered]},
        )

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    def _host_limit(self, url: str) -> asyncio.Semaphore:
        host = urlsplit(url).netloc
        if host not in self._hosts:
            self._hosts[host] = asyncio.Semaphore(self._per_host)
        return self._hosts[host]

    def _cache_path(self, url: str, headers: Mapping[str, str]) -> Path | None:
        if self._cache_dir is None:
            return None
        # Authorization changes what a server may answer (private repos), so it is part of the key.
        key = url + "\0" + headers.get("Authorization", "")
        return self._cache_dir / "http" / (hashlib.sha256(key.encode()).hexdigest() + ".json")

    def _load_cached(self, path: Path | None) -> dict[str, Any] | None:
        """The entry at ``path``: its JSON header (``etag``, ``last_modified``, ``headers``)
        with the stored answer as ``body`` (the bytes after the header's line)."""
        if path is None:
            return None
        try:
            header, _, body = path.read_bytes().partition(b"\n")
            data = json.loads(header)
        except (OSError, ValueError):
            return None  # absent, or damaged: only a cache miss
        if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
            return None  # written by an older nanodistro (hex bodies in JSON): a miss
        if data.get("size") != len(body):
            return None  # cut short (entries are not fsynced): a miss, never a partial answer
        data["body"] = body
        return data

    async def get(self, url: str, *, headers: Mapping[str, str] | None = None) -> Response:
        """GET ``url``; raises ``FetchError`` naming the URL for any non-2xx final answer, or
        when the answer is not complete within ``request_timeout`` seconds."""
        check_plain_http(url, insecure=self.insecure)
        request_headers = dict(headers or {})
        cache_path = self._cache_path(url, request_headers)
        cached = self._load_cached(cache_path)
        if cached:
            if cached.get("etag"):
                request_headers["If-None-Match"] = cached["etag"]
            if cached.get("last_modified"):
                request_headers["If-Modified-Since"] = cached["last_modified"]

        host = urlsplit(url).netloc
        self._refuse_silent(host, url)
        loop = asyncio.get_running_loop()
        limit = self._host_limit(url)
        if limit.locked():
            # Waiting behind other recipes' requests to the same host is not this server's
            # slowness: neither deadline runs meanwhile.
            async with _deadline_paused():
                await limit.acquire()
        else:
            await limit.acquire()
        try:
            started = loop.time()
            self._refuse_silent(host, url)
            note_request(url)
            answered = [False]
            _answered.set(answered)
            try:
                async with asyncio.timeout(self.request_timeout):
                    response = await self._get_with_retries(url, request_headers)
            except TimeoutError:
                self._note_silence(host, answered[0], loop.time() - started)
                raise FetchError(
                    f"no complete answer within the request deadline of "
                    f"{self.request_timeout:g} s (--request-timeout)",
                    where=url,
                ) from None
            except asyncio.CancelledError:  # the recipe's deadline
                self._note_silence(host, answered[0], loop.time() - started)
                raise
        finally:
            limit.release()

        if response.status_code == 304 and cached:
            return Response(
                url=url,
                status=200,
                headers=cached.get("headers") or {},
                body=cached["body"],
                from_cache=True,
            )
        if response.status_code >= 400:
            detail = response.text[:200].strip().replace("\n", " ")
            raise FetchError(f"HTTP {response.status_code}: {detail}", where=url)
        body = response.content
        result = Response(
            url=str(response.url), status=response.status_code, headers=response.headers, body=body
        )
        etag = response.headers.get("ETag")
        modified = response.headers.get("Last-Modified")
        if cache_path is not None and (etag or modified):
            keep = {
                k: v for k, v in response.headers.items() if k.lower().startswith(("link", "x-"))
            }
            entry = {
                "format": CACHE_FORMAT,
                "url": url,
                "etag": etag,
                "last_modified": modified,
                "headers": keep,
                "size": len(body),
            }
            # One JSON line, then the body as received: no hex or JSON escaping of the body
            # to pay for on each of a catalog's thousands of answers.
            # in a worker thread: a file system busy with other writers' fsyncs must not
            # stall the event loop and every request in flight with it
            data = json.dumps(entry).encode() + b"\n" + body
            await asyncio.to_thread(_write_cache_entry, cache_path, data)
        return result

    def _note_silence(self, host: str, answered: bool, waited: float) -> None:
        # 0.9: a recipe's deadline cuts its request a little short of the full time.
        if not answered and waited >= 0.9 * self.silent_after:
            self._silent.setdefault(host, waited)

    def _refuse_silent(self, host: str, url: str) -> None:
        """At catalog scale one silent upstream would otherwise cost a deadline per recipe
        that names it (hundreds of recipes on one forge): after the first silence, the rest of
        the run fails its requests at once. Slow answers (a trickling body) do not count."""
        waited = self._silent.get(host)
        if waited is not None:
            name = urlsplit(url).hostname or host
            raise FetchError(
                f"{name} sent no answer within {round(waited, 1):g} s earlier in this run; "
                "not asked again until the next run",
                where=url,
            )

    async def _get_with_retries(self, url: str, headers: dict[str, str]) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = await self._client.get(url, headers=headers)
            except (httpx.TimeoutException, httpx.TransportError) as error:
                if attempt >= self._retries:
                    raise FetchError(
                        f"{describe_http_error(error, url)} (after {attempt + 1} attempts)",
                        where=url,
                    ) from None
            else:
                if response.status_code not in RETRY_STATUS or attempt >= self._retries:
                    return response
                retry_after = response.headers.get("Retry-After", "")
                if retry_after.isdigit():
                    await asyncio.sleep(min(float(retry_after), 60.0))
                    attempt += 1
                    continue
            await asyncio.sleep(backoff_delay(attempt + 1, self._backoff))
            attempt += 1


def _write_cache_entry(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically (rename), but without fsync: an entry lost in a crash is a
    cache miss (:meth:`HttpClient._load_cached` reads a damaged one as absent), while an fsync
    per answer stalls the event loop, and so every request in flight, for milliseconds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def env_token(*names: str) -> str | None:
    """The first non-empty environment variable among ``names`` (API tokens)."""
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None
