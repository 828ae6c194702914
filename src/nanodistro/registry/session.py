"""The HTTP session under the registry client: scheme choice, auth, retries, error text.

``RegistrySession`` owns the httpx.Client and the Authenticator for one registry host and sends
every request through ``_send``: it answers a ``401`` challenge once (auth.py), retries 5xx/429
and connection errors with exponential backoff, turns other statuses into a RegistryError
carrying the spec's ``errors[].code: message``, and never lets an absolute URL from the registry
move the client onto plain HTTP elsewhere or carry credentials to another host. Plain HTTP is
tried only for loopback or ``insecure`` registries, after HTTPS did not answer; a certificate
that fails verification is an error, never a reason to drop TLS. The blob and manifest
operations (blobs.py, client.py) are built on it.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Self, TypeVar

import httpx

from nanodistro.errors import RegistryError
from nanodistro.registry.auth import (
    Authenticator,
    Credentials,
    credentials_from_docker_config,
)
from nanodistro.util.http import (
    RETRY_STATUS,
    call_with_retries,
    check_plain_http,
    describe_http_error,
    is_loopback,
    redirect_guard,
)

# Blobs up to this size go in one PUT; larger ones are sent in PATCH chunks of CHUNK_SIZE.
DEFAULT_CHUNK_THRESHOLD = 64 * 1024 * 1024
DEFAULT_CHUNK_SIZE = 16 * 1024 * 1024
T = TypeVar("T")


def _is_certificate_error(exc: BaseException) -> bool:
    """A failed certificate check somewhere in the exception chain: retrying cannot help."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class _Retryable(RegistryError):
    """A failure worth retrying (5xx, 429, connection error)."""


def _error_detail(response: httpx.Response) -> str:
    """``HTTP 404 MANIFEST_UNKNOWN: manifest unknown`` from the spec's error JSON, if any."""
    text = f"HTTP {response.status_code}"
    try:
        body = json.loads(response.content) if response.content else None
    except (json.JSONDecodeError, UnicodeDecodeError, httpx.ResponseNotRead):
        body = None
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, list) and errors:
        parts = []
        for error in errors:
            if isinstance(error, dict):
                code, message = error.get("code", "?"), error.get("message", "")
                parts.append(f"{code}: {message}" if message else str(code))
        if parts:
            text += " " + "; ".join(parts)
    return text


class RegistrySession:
    """One registry host's connection: settings, the httpx.Client, auth and the request core."""

    def __init__(
        self,
        registry: str,
        *,
        insecure: bool = False,
        plain_http: bool | None = None,
        username: str | None = None,
        password: str | None = None,
        docker_config: Path | None = None,
        chunk_threshold: int = DEFAULT_CHUNK_THRESHOLD,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        retries: int = 3,
        backoff: float = 0.5,
        timeout: float = 60.0,
    ) -> None:
        self.registry = registry
        try:
            parsed = httpx.URL(f"http://{registry}/")
        except httpx.InvalidURL:
            raise RegistryError("invalid registry host", where=registry) from None
        self._host, self._port = parsed.host, parsed.port
        loopback = is_loopback(parsed.host)
        if plain_http and not (loopback or insecure):
            raise RegistryError(
                "refusing plain http to a non-loopback registry (pass insecure=True to allow)",
                where=registry,
            )
        if (username is None) != (password is None):
            raise RegistryError("give both username and password, or neither", where=registry)
        credentials: Credentials | Callable[[], Credentials | None] = (
            Credentials(username, password)
            if username is not None and password is not None
            # read (helpers run) only if the registry challenges: anonymous pushes never do
            else lambda: credentials_from_docker_config(registry, docker_config)
        )
        self.insecure = insecure
        self.chunk_threshold = chunk_threshold
        self.chunk_size = max(1, chunk_size)
        self.retries = retries
        self.backoff = backoff
        self._schemes: list[str]
        if plain_http is None:
            # As docker and go-containerregistry: loopback and insecure registries are tried on
            # HTTPS first, then plain HTTP.
            self._schemes = ["https", "http"] if loopback or insecure else ["https"]
        else:
            self._schemes = ["http"] if plain_http else ["https"]
        self._base: str | None = None if len(self._schemes) > 1 else self._url_for(self._schemes[0])
        # Blob GETs follow redirects (to a CDN): each hop is held to the plain-http rule.
        self._http = httpx.Client(
            verify=not insecure,
            timeout=timeout,
            follow_redirects=False,
            event_hooks={"response": [redirect_guard(insecure=insecure)]},
        )
        self._auth = Authenticator(registry, credentials, insecure=insecure, timeout=timeout)

    def _is_registry(self, url: httpx.URL) -> bool:
        default = 443 if url.scheme == "https" else 80
        return url.host == self._host and (url.port or default) == (self._port or default)

    def _url_for(self, scheme: str) -> str:
        return f"{scheme}://{self.registry}"

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- the request core --------------------------------------------------------------------

    def _base_url(self) -> str:
        if self._base is None:
            # Scheme not given: HTTPS if it answers, else plain HTTP; an HTTPS registry whose
            # certificate fails verification is an error, not a reason to drop TLS.
            for scheme in self._schemes:
                try:
                    self._http.get(f"{self._url_for(scheme)}/v2/", timeout=10.0)
                except httpx.TransportError as exc:
                    if _is_certificate_error(exc):
                        raise RegistryError(
                            f"TLS certificate not trusted: {exc} (insecure=True skips "
                            "verification)",
                            where=self.registry,
                        ) from None
                    continue
                self._base = self._url_for(scheme)
                break
            else:
                raise RegistryError(
                    "registry does not answer on https or http", where=self.registry
                )
        return self._base

    def _url(self, path_or_url: str) -> str:
        if path_or_url.startswith(("http://", "https://")):
            # An absolute URL came from the registry (an upload ``Location``): the same rule
            # as a redirect, it may not move the client onto plain http elsewhere.
            check_plain_http(path_or_url, insecure=self.insecure, redirected_from=self.registry)
            return path_or_url
        return self._base_url() + path_or_url

    def _send(
        self,
        method: str,
        path_or_url: str,
        *,
        scopes: tuple[str, ...],
        where: str,
        ok: tuple[int, ...],
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        content: bytes | None = None,
        stream: bool = False,
        retry: bool = True,
        follow_redirects: bool = False,
    ) -> httpx.Response:
        """One logical request: answers auth challenges once, retries 5xx/429/connection errors
        with exponential backoff (when ``retry``), raises RegistryError for other statuses.
        With ``stream`` the caller must close the returned response."""
        attempts = self.retries + 1 if retry else 1
        try:
            return self._with_retries(
                lambda: self._send_once(
                    method,
                    path_or_url,
                    scopes=scopes,
                    where=where,
                    ok=ok,
                    headers=headers,
                    params=params,
                    content=content,
                    stream=stream,
                    follow_redirects=follow_redirects,
                ),
                attempts,
                retry_on=_Retryable,
            )
        except _Retryable as exc:
            if not retry:
                raise  # the caller retries a larger unit (a whole blob upload)
            raise RegistryError(
                exc.message + f" (after {attempts} attempts)", where=where
            ) from None

    def _with_retries(
        self,
        call: Callable[[], T],
        attempts: int,
        *,
        retry_on: type[BaseException],
    ) -> T:
        return call_with_retries(call, attempts=attempts, backoff=self.backoff, retry_on=retry_on)

    def _send_once(
        self,
        method: str,
        path_or_url: str,
        *,
        scopes: tuple[str, ...],
        where: str,
        ok: tuple[int, ...],
        headers: dict[str, str] | None,
        params: dict[str, str] | None,
        content: bytes | None,
        stream: bool,
        follow_redirects: bool,
    ) -> httpx.Response:
        url = httpx.URL(self._url(path_or_url))
        if params:
            url = url.copy_merge_params(params)
        answered = False
        while True:
            request_headers = dict(headers or {})
            authorization = self._auth.header(scopes)
            # Never hand registry credentials to another host (an absolute upload Location).
            if authorization and self._is_registry(url):
                request_headers["Authorization"] = authorization
            request = self._http.build_request(
                method, url, headers=request_headers, content=content
            )
            try:
                response = self._http.send(
                    request, stream=stream, follow_redirects=follow_redirects
                )
            except httpx.TransportError as exc:
                if _is_certificate_error(exc):
                    raise RegistryError(
                        f"TLS certificate not trusted: {exc} (insecure=True skips verification)",
                        where=where,
                    ) from None
                raise _Retryable(f"{method} failed: {describe_http_error(exc)}") from None
            if response.status_code in ok:
                return response
            if stream:
                response.read()
                response.close()
            if response.status_code == 401 and not answered:
                answered = True
                self._auth.answer(response, scopes, self._http)
                continue
            detail = f"{method} {url.path}: {_error_detail(response)}"
            if response.status_code in (401, 403):
                detail += (
                    " (the registry refused the credentials)"
                    if self._auth.credentials
                    else " (no credentials given)"
                )
            if response.status_code in RETRY_STATUS:
                raise _Retryable(detail)
            raise RegistryError(detail, where=where)

    def ping(self) -> None:
        """``GET /v2/``: the registry speaks the distribution API (401 counts, auth comes later)."""
        self._send("GET", "/v2/", scopes=(), where=self.registry, ok=(200, 401))

    def _location(self, response: httpx.Response, where: str) -> str:
        location = response.headers.get("Location")
        if not location:
            raise RegistryError(
                f"{response.request.method} answered {response.status_code} without Location",
                where=where,
            )
        return str(response.request.url.join(location))

    @staticmethod
    def _check_digest_header(response: httpx.Response, expected: str, where: str) -> None:
        reported = response.headers.get("Docker-Content-Digest")
        if reported and reported != expected:
            raise RegistryError(
                f"registry reports digest {reported}, we computed {expected}", where=where
            )

    def _where(self, repository: str, identifier: str) -> str:
        separator = "@" if ":" in identifier else ":"
        return f"{self.registry}/{repository}{separator}{identifier}"
