"""Blob transfer on the registry session: existence checks, uploads, mounts and downloads.

An upload (``upload_blob``) is one POST, then either one monolithic PUT (up to
``chunk_threshold``) or PATCH chunks of ``chunk_size`` closed by an empty PUT; the local bytes
are hashed while sent and must match the descriptor, and the upload is retried as a whole since
a half-sent PATCH cannot be resumed safely. A cross-repository mount is asked for when
``mount_from`` is given. A download (``fetch_blob``) streams to an atomic file, checking size
and digest as it goes, so nothing is left behind on a mismatch. ``compute_digest`` is the one
digest helper of the client.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from nanodistro.errors import RegistryError
from nanodistro.registry.auth import repository_scope
from nanodistro.registry.reference import validate_digest
from nanodistro.registry.session import RegistrySession, _Retryable
from nanodistro.util.atomic import atomic_writer

_READ_SIZE = 1024 * 1024


def compute_digest(data: bytes, algorithm: str = "sha256") -> str:
    hasher = _hasher(algorithm)
    hasher.update(data)
    return f"{algorithm}:{hasher.hexdigest()}"


def _hasher(algorithm: str) -> Any:
    if algorithm not in ("sha256", "sha512"):
        raise RegistryError(f"unsupported digest algorithm {algorithm!r} (sha256, sha512)")
    return hashlib.new(algorithm)


class BlobClient(RegistrySession):
    """The blob endpoints (``/v2/<name>/blobs/...``) of the distribution API."""

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
