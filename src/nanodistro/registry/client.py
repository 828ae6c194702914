"""A small client for the OCI distribution spec (v1.1) on httpx.

Why not a library: the ``oras`` Python SDK (the maintained one on PyPI) pushes files as
artifacts on top of ``requests`` + ``jsonschema``; it has no OCI-layout push/pull, no generic
index handling and no digest checking of what the registry reports, so we would still write
most of this. The protocol part we need is small: ``/v2/`` ping, blob HEAD/POST/PATCH/PUT/GET,
manifest PUT/GET/HEAD and tag listing, with Basic and bearer-token auth (see auth.py).

Every digest the registry reports (``Docker-Content-Digest``) is checked against the one we
computed; a mismatch is a RegistryError. Plain HTTP is used only for loopback registries
(127.0.0.0/8, ::1, localhost) or with ``insecure=True``, and only after HTTPS did not answer
(as docker and crane do); ``insecure`` also skips certificate verification. ``plain_http``
forces a scheme. Retries: 5xx/429 and connection errors, with exponential backoff; a blob
upload is retried as a whole (POST..PUT), since a half-sent PATCH cannot be resumed safely.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import httpx

from nanodistro.errors import RegistryError
from nanodistro.registry.auth import (
    Authenticator,
    Credentials,
    credentials_from_docker_config,
    repository_scope,
)
from nanodistro.registry.mediatypes import ACCEPT_MANIFESTS, MANIFEST_TYPES, OCI_INDEX, OCI_MANIFEST
from nanodistro.registry.reference import validate_digest
from nanodistro.util.atomic import atomic_writer
from nanodistro.util.http import (
    RETRY_STATUS,
    call_with_retries,
    check_plain_http,
    is_loopback,
    redirect_guard,
)

# Blobs up to this size go in one PUT; larger ones are sent in PATCH chunks of CHUNK_SIZE.
DEFAULT_CHUNK_THRESHOLD = 64 * 1024 * 1024
DEFAULT_CHUNK_SIZE = 16 * 1024 * 1024
# Registries may refuse manifests over 4 MiB (distribution spec "Pushing Manifests").
MAX_MANIFEST_SIZE = 4 * 1024 * 1024
_READ_SIZE = 1024 * 1024
T = TypeVar("T")


def compute_digest(data: bytes, algorithm: str = "sha256") -> str:
    hasher = _hasher(algorithm)
    hasher.update(data)
    return f"{algorithm}:{hasher.hexdigest()}"


def _hasher(algorithm: str) -> Any:
    if algorithm not in ("sha256", "sha512"):
        raise RegistryError(f"unsupported digest algorithm {algorithm!r} (sha256, sha512)")
    return hashlib.new(algorithm)


@dataclass(frozen=True)
class Manifest:
    """A manifest or index as the registry served it: exact bytes, media type and digest."""

    media_type: str
    data: bytes
    digest: str
    document: dict[str, Any] = field(repr=False)


def _subject_of(data: bytes) -> str | None:
    try:
        document = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    subject = document.get("subject") if isinstance(document, dict) else None
    digest = subject.get("digest") if isinstance(subject, dict) else None
    return digest if isinstance(digest, str) else None


def _referrer_descriptor(data: bytes, digest: str) -> dict[str, Any]:
    """The descriptor a referrers list carries for a manifest (image-spec descriptor +
    ``artifactType`` and ``annotations``, as distribution-spec "Listing Referrers")."""
    document = json.loads(data)
    descriptor: dict[str, Any] = {
        "mediaType": document.get("mediaType", OCI_MANIFEST),
        "digest": digest,
        "size": len(data),
    }
    config = document.get("config")
    artifact_type = document.get("artifactType") or (
        config.get("mediaType") if isinstance(config, dict) else None
    )
    if artifact_type:
        descriptor["artifactType"] = artifact_type
    if isinstance(document.get("annotations"), dict):
        descriptor["annotations"] = document["annotations"]
    return descriptor


def _referrers_tag(digest: str) -> str:
    """The OCI 1.1 referrers tag schema: ``<alg>-<ref>`` (truncated to a valid tag)."""
    algorithm, encoded = digest.split(":", 1)
    return f"{algorithm}-{encoded}"[:128]


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


class RegistryClient:
    """Talks to one registry host. Use as a context manager (it owns an httpx.Client)."""

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
        credentials = (
            Credentials(username, password)
            if username is not None and password is not None
            else credentials_from_docker_config(registry, docker_config)
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

    def __enter__(self) -> RegistryClient:
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
                raise _Retryable(f"{method} failed: {type(exc).__name__}: {exc}") from None
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

    # -- API -----------------------------------------------------------------------------------

    def ping(self) -> None:
        """``GET /v2/``: the registry speaks the distribution API (401 counts, auth comes later)."""
        self._send("GET", "/v2/", scopes=(), where=self.registry, ok=(200, 401))

    def blob_exists(self, repository: str, digest: str) -> bool:
        validate_digest(digest)
        response = self._send(
            "HEAD",
            f"/v2/{repository}/blobs/{digest}",
            scopes=(repository_scope(repository, ["pull"]),),
            where=self._where(repository, digest),
            ok=(200, 404),
            follow_redirects=True,
        )
        return response.status_code == 200

    def upload_blob(
        self,
        repository: str,
        digest: str,
        size: int,
        opener: Callable[[], BinaryIO],
        *,
        mount_from: str | None = None,
    ) -> str:
        """Make ``digest`` present in ``repository``; return ``"exists"``, ``"mounted"`` or
        ``"uploaded"``. ``opener`` gives a fresh stream of the blob (it may be called again on
        a retry); its bytes are hashed while sent and must match ``digest``."""
        validate_digest(digest)
        if self.blob_exists(repository, digest):
            return "exists"
        try:
            return self._with_retries(
                lambda: self._upload_once(repository, digest, size, opener, mount_from),
                self.retries + 1,
                retry_on=_Retryable,
            )
        except _Retryable as exc:
            raise RegistryError(
                exc.message + f" (after {self.retries + 1} attempts)",
                where=self._where(repository, digest),
            ) from None

    def _upload_once(
        self,
        repository: str,
        digest: str,
        size: int,
        opener: Callable[[], BinaryIO],
        mount_from: str | None,
    ) -> str:
        where = self._where(repository, digest)
        scopes = [repository_scope(repository, ["pull", "push"])]
        params = None
        if mount_from and mount_from != repository:
            scopes.append(repository_scope(mount_from, ["pull"]))
            params = {"mount": digest, "from": mount_from}
        start = self._send(
            "POST",
            f"/v2/{repository}/blobs/uploads/",
            scopes=tuple(scopes),
            where=where,
            ok=(201, 202),
            params=params,
            headers={"Content-Length": "0"},
            retry=False,
        )
        scope_tuple = tuple(scopes)
        if start.status_code == 201:
            self._check_digest_header(start, digest, where)
            return "mounted"
        location = self._location(start, where)
        algorithm = digest.split(":", 1)[0]
        hasher = _hasher(algorithm)
        with opener() as stream:
            if size <= self.chunk_threshold:
                data = stream.read()
                hasher.update(data)
                self._check_local(hasher, digest, len(data), size, where)
                final = self._complete_upload(location, digest, scope_tuple, where, data)
            else:
                offset = 0
                while True:
                    chunk = stream.read(self.chunk_size)
                    if not chunk:
                        break
                    hasher.update(chunk)
                    patched = self._send(
                        "PATCH",
                        location,
                        scopes=scope_tuple,
                        where=where,
                        ok=(202, 204),  # go-containerregistry's registry answers 204
                        headers={
                            "Content-Type": "application/octet-stream",
                            "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                        },
                        content=chunk,
                        retry=False,
                    )
                    offset += len(chunk)
                    if patched.headers.get("Location"):
                        location = self._location(patched, where)
                try:
                    self._check_local(hasher, digest, offset, size, where)
                except RegistryError:
                    with contextlib.suppress(RegistryError):
                        self._send(
                            "DELETE", location, scopes=scope_tuple, where=where, ok=(204, 404)
                        )
                    raise
                final = self._complete_upload(location, digest, scope_tuple, where, None)
        self._check_digest_header(final, digest, where)
        return "uploaded"

    def _complete_upload(
        self,
        location: str,
        digest: str,
        scopes: tuple[str, ...],
        where: str,
        data: bytes | None,
    ) -> httpx.Response:
        """The closing ``PUT ?digest=``: carrying the whole blob (monolithic upload) or, with
        ``data`` None, empty after the PATCHed chunks."""
        headers = (
            {"Content-Length": "0"}
            if data is None
            else {"Content-Type": "application/octet-stream"}
        )
        return self._send(
            "PUT",
            location,
            scopes=scopes,
            where=where,
            ok=(201,),
            params={"digest": digest},
            headers=headers,
            content=data,
            retry=False,
        )

    @staticmethod
    def _check_local(hasher: Any, digest: str, got: int, size: int, where: str) -> None:
        actual = f"{hasher.name}:{hasher.hexdigest()}"
        if actual != digest or got != size:
            raise RegistryError(
                f"local blob does not match its descriptor: expected {digest} ({size} bytes), "
                f"content is {actual} ({got} bytes); refusing to upload",
                where=where,
            )

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

    @contextlib.contextmanager
    def _blob_stream(self, repository: str, digest: str) -> Iterator[httpx.Response]:
        response = self._send(
            "GET",
            f"/v2/{repository}/blobs/{digest}",
            scopes=(repository_scope(repository, ["pull"]),),
            where=self._where(repository, digest),
            ok=(200,),
            stream=True,
            follow_redirects=True,
        )
        try:
            yield response
        finally:
            response.close()

    def fetch_blob(
        self, repository: str, digest: str, destination: Path, *, size: int | None = None
    ) -> None:
        """Download a blob to ``destination`` (atomically), verifying digest and size while
        streaming; nothing is left behind on a mismatch."""
        validate_digest(digest)
        where = self._where(repository, digest)
        try:
            self._with_retries(
                lambda: self._fetch_blob_once(repository, digest, destination, size, where),
                self.retries + 1,
                retry_on=httpx.TransportError,
            )
        except httpx.TransportError as exc:
            raise RegistryError(f"download failed: {exc}", where=where) from None

    def _fetch_blob_once(
        self, repository: str, digest: str, destination: Path, size: int | None, where: str
    ) -> None:
        try:
            self._stream_to(repository, digest, destination, size, where)
        except OSError as exc:
            raise RegistryError(f"cannot write {destination}: {exc}", where=where) from None

    def _stream_to(
        self, repository: str, digest: str, destination: Path, size: int | None, where: str
    ) -> None:
        hasher = _hasher(digest.split(":", 1)[0])
        written = 0
        with atomic_writer(destination) as out, self._blob_stream(repository, digest) as response:
            for chunk in response.iter_bytes(_READ_SIZE):
                written += len(chunk)
                if size is not None and written > size:
                    raise RegistryError(
                        f"blob is larger than its descriptor's {size} bytes", where=where
                    )
                hasher.update(chunk)
                out.write(chunk)
            actual = f"{hasher.name}:{hasher.hexdigest()}"
            if actual != digest:
                raise RegistryError(f"downloaded blob has digest {actual}", where=where)
            if size is not None and written != size:
                raise RegistryError(
                    f"downloaded blob has {written} bytes, descriptor says {size}", where=where
                )

    def put_manifest(self, repository: str, reference: str, data: bytes, media_type: str) -> str:
        """PUT a manifest or index under a tag or digest; return its digest (checked against
        the registry's ``Docker-Content-Digest``)."""
        digest = compute_digest(data, "sha256")
        where = self._where(repository, reference)
        if ":" in reference and reference != digest:
            raise RegistryError(f"manifest content has digest {digest}", where=where)
        if media_type not in MANIFEST_TYPES:
            raise RegistryError(f"not a manifest media type: {media_type!r}", where=where)
        response = self._send(
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            scopes=(repository_scope(repository, ["pull", "push"]),),
            where=where,
            ok=(201,),
            headers={"Content-Type": media_type},
            content=data,
        )
        self._check_digest_header(response, digest, where)
        subject = _subject_of(data)
        if subject and not response.headers.get("OCI-Subject"):
            # No referrers API here: keep the OCI 1.1 fallback tag index up to date.
            self._add_to_referrers_tag(repository, subject, _referrer_descriptor(data, digest))
        return digest

    def upload_bytes(self, repository: str, data: bytes, *, mount_from: str | None = None) -> str:
        """Make the blob ``data`` present in ``repository``; return its digest."""
        digest = compute_digest(data)
        self.upload_blob(
            repository, digest, len(data), lambda: io.BytesIO(data), mount_from=mount_from
        )
        return digest

    def referrers(
        self, repository: str, digest: str, *, artifact_type: str | None = None
    ) -> list[dict[str, Any]]:
        """Descriptors of manifests whose ``subject`` is ``digest`` (OCI 1.1): the referrers
        API when the registry has it, else the fallback tag ``<alg>-<hex>``."""
        validate_digest(digest)
        where = self._where(repository, digest)
        response = self._send(
            "GET",
            f"/v2/{repository}/referrers/{digest}",
            scopes=(repository_scope(repository, ["pull"]),),
            where=where,
            ok=(200, 404),
            headers={"Accept": OCI_INDEX},
            params={"artifactType": artifact_type} if artifact_type else None,
        )
        document: Any = None
        if response.status_code == 200:
            with contextlib.suppress(json.JSONDecodeError, UnicodeDecodeError):
                document = json.loads(response.content)
        if not (isinstance(document, dict) and isinstance(document.get("manifests"), list)):
            fallback = self._get_optional_manifest(repository, _referrers_tag(digest))
            document = fallback.document if fallback else {"manifests": []}
        entries = [e for e in document.get("manifests", []) if isinstance(e, dict)]
        if artifact_type:
            entries = [e for e in entries if e.get("artifactType") == artifact_type]
        return entries

    def _get_optional_manifest(self, repository: str, reference: str) -> Manifest | None:
        try:
            return self.get_manifest(repository, reference)
        except RegistryError as exc:
            if "HTTP 404" in exc.message:
                return None
            raise

    def _add_to_referrers_tag(
        self, repository: str, subject: str, descriptor: dict[str, Any]
    ) -> None:
        tag = _referrers_tag(subject)
        current = self._get_optional_manifest(repository, tag)
        entries = list(current.document.get("manifests", [])) if current else []
        if any(isinstance(e, dict) and e.get("digest") == descriptor["digest"] for e in entries):
            return
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [*entries, descriptor]}
        data = json.dumps(index, separators=(",", ":")).encode()
        self.put_manifest(repository, tag, data, OCI_INDEX)

    def get_manifest(self, repository: str, reference: str) -> Manifest:
        """GET a manifest/index (OCI or Docker schema 2), verified against the digest in the
        reference or the registry's ``Docker-Content-Digest``."""
        where = self._where(repository, reference)
        if ":" in reference:
            validate_digest(reference, where=where)
        response = self._send(
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            scopes=(repository_scope(repository, ["pull"]),),
            where=where,
            ok=(200,),
            headers={"Accept": ACCEPT_MANIFESTS},
            follow_redirects=True,
        )
        data = response.content
        if len(data) > MAX_MANIFEST_SIZE:
            raise RegistryError(f"manifest larger than {MAX_MANIFEST_SIZE} bytes", where=where)
        expected = reference if ":" in reference else response.headers.get("Docker-Content-Digest")
        algorithm = expected.split(":", 1)[0] if expected else "sha256"
        digest = compute_digest(data, algorithm if algorithm in ("sha256", "sha512") else "sha256")
        if expected and digest != expected:
            raise RegistryError(
                f"manifest content has digest {digest}, expected {expected}", where=where
            )
        if algorithm != "sha256":
            digest = compute_digest(data, "sha256")
        try:
            document = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RegistryError(f"manifest is not JSON: {exc}", where=where) from None
        if not isinstance(document, dict):
            raise RegistryError("manifest is not a JSON object", where=where)
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        declared = document.get("mediaType")
        media_type = declared if isinstance(declared, str) and declared else content_type
        if media_type not in MANIFEST_TYPES:
            raise RegistryError(
                f"unsupported manifest media type {media_type!r} (expected OCI or Docker "
                "schema 2 manifest/index)",
                where=where,
            )
        return Manifest(media_type=media_type, data=data, digest=digest, document=document)

    def resolve(self, repository: str, reference: str) -> str:
        """The digest a tag points at (HEAD; GET when the registry gives no digest header)."""
        if ":" in reference:
            return validate_digest(reference)
        response = self._send(
            "HEAD",
            f"/v2/{repository}/manifests/{reference}",
            scopes=(repository_scope(repository, ["pull"]),),
            where=self._where(repository, reference),
            ok=(200,),
            headers={"Accept": ACCEPT_MANIFESTS},
            follow_redirects=True,
        )
        digest = response.headers.get("Docker-Content-Digest")
        return digest if digest else self.get_manifest(repository, reference).digest

    def list_tags(self, repository: str, *, page_size: int | None = None) -> list[str]:
        """All tags of ``repository``, following ``Link: <...>; rel="next"`` pagination."""
        tags: list[str] = []
        where = f"{self.registry}/{repository}"
        url: str | None = f"/v2/{repository}/tags/list"
        params = {"n": str(page_size)} if page_size else None
        while url:
            response = self._send(
                "GET",
                url,
                scopes=(repository_scope(repository, ["pull"]),),
                where=where,
                ok=(200,),
                params=params,
            )
            params = None
            try:
                body = response.json()
            except (json.JSONDecodeError, UnicodeDecodeError):
                body = None
            page = body.get("tags") if isinstance(body, dict) else None
            if page is not None and not (
                isinstance(page, list) and all(isinstance(t, str) for t in page)
            ):
                raise RegistryError("tags/list answer has no 'tags' string list", where=where)
            tags.extend(page or [])
            next_link = response.links.get("next", {}).get("url")
            url = str(response.request.url.join(next_link)) if next_link else None
        return tags
