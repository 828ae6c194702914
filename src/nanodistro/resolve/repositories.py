"""APK repositories: where indexes and packages come from, fetched and verified.

A repository is a local folder or an http(s) URL, optionally tagged (``@testing URL``, as in
``/etc/apk/repositories`` and apko configs, reference/formats.md §2.3). Its index is
``<repo>/<arch>/APKINDEX.tar.gz`` and a package ``<repo>/<arch>/<name>-<version>.apk``.

Trust (DESIGN invariant 5): every index is signature-checked against the keyring before any of
its records is used, and a downloaded package must have the identity the signed index gave it
(``C:`` = SHA-1 of the control gzip member) and its ``S:`` size.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from nanodistro.errors import ChecksumError, ConfigError, FetchError, NanodistroError
from nanodistro.formats.apk import read_apk
from nanodistro.formats.apkindex import ApkIndex, read_index
from nanodistro.formats.pkginfo import PackageInfo
from nanodistro.resolve.universe import RepositoryRef, Universe
from nanodistro.util.atomic import atomic_write_bytes
from nanodistro.util.http import plain_http_allowed
from nanodistro.util.progress import Progress

if TYPE_CHECKING:  # httpx is imported on the first remote read: local repositories never need it
    import httpx

__all__ = [
    "RepositoryClient",
    "RepositoryRef",
    "index_location",
    "is_remote",
    "package_location",
    "parse_repository",
    "parse_repository_list",
]


#: Refuse absurdly large downloads (the full Wolfi index is ~30 MB, big packages a few hundred).
MAX_DOWNLOAD = 2 * 1024**3


def parse_repository(spec: str, *, where: str = "repository") -> RepositoryRef:
    """``URL``, ``DIR`` or ``@tag URL`` (apk-tools ``repositories`` line, apko ``repositories``)."""
    words = spec.split()
    if len(words) == 1 and not words[0].startswith("@"):
        return RepositoryRef(words[0].rstrip("/"))
    if len(words) == 2 and words[0].startswith("@") and len(words[0]) > 1:
        return RepositoryRef(words[1].rstrip("/"), words[0][1:])
    raise ConfigError(
        f"invalid repository {spec!r} (expected URL, directory or '@tag URL')", where=where
    )


def parse_repository_list(text: str, *, where: str = "repositories") -> list[RepositoryRef]:
    """Parse an ``/etc/apk/repositories`` file: one repository a line, ``#`` comments."""
    out = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if line:
            try:
                out.append(parse_repository(line, where=f"{where}:{lineno}"))
            except ConfigError as error:
                raise ConfigError(error.message, where=where, line=lineno) from None
    return out


def is_remote(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def index_location(repo: RepositoryRef, arch: str) -> str:
    return f"{repo.url}/{arch}/APKINDEX.tar.gz"


def package_location(repo: RepositoryRef, arch: str, info: PackageInfo) -> str:
    return f"{repo.url}/{arch}/{info.filename}"


class RepositoryClient:
    """Reads indexes and packages from folders and http(s) URLs, verifying what it reads.

    ``keyring`` maps key file names to PEM public keys (``trust.keys.load_keyring``). Plain http
    is refused except to loopback hosts unless ``insecure=True`` (signatures still apply).
    """

    def __init__(
        self,
        keyring: Mapping[str, bytes],
        *,
        insecure: bool = False,
        timeout: float = 60.0,
        client: httpx.Client | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.keyring = keyring
        self.insecure = insecure
        self.progress = progress
        self._timeout = timeout
        self._own_client = client is None
        # Created on the first remote read: building one loads the CA bundle (~20 ms), which
        # builds from local repositories never need.
        self._client_instance = client

    @property
    def _client(self) -> httpx.Client:
        if self._client_instance is None:
            import httpx

            self._client_instance = httpx.Client(timeout=self._timeout, follow_redirects=True)
        return self._client_instance

    def close(self) -> None:
        if self._own_client and self._client_instance is not None:
            self._client_instance.close()
            self._client_instance = None

    def __enter__(self) -> RepositoryClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- raw access ------------------------------------------------------------------------------

    def read(self, location: str) -> bytes:
        """Bytes of a local path / ``file://`` URL or an http(s) URL (FetchError otherwise)."""
        if is_remote(location):
            return self._get(location)
        path = Path(
            urllib.parse.urlparse(location).path if location.startswith("file:") else location
        )
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise FetchError("not found", where=str(path)) from None
        except OSError as error:
            raise FetchError(f"cannot read ({error.strerror})", where=str(path)) from None

    def _get(self, url: str) -> bytes:
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme == "http" and not plain_http_allowed(
            parsed.hostname or "", insecure=self.insecure
        ):
            raise FetchError(
                "refusing plain http to a non-loopback host (use https, or --insecure)", where=url
            )
        if self.progress:
            self.progress(f"fetch {url}")
        import httpx

        try:
            with self._client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise FetchError(f"HTTP {response.status_code}", where=url)
                chunks = []
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > MAX_DOWNLOAD:
                        raise FetchError(f"response larger than {MAX_DOWNLOAD} bytes", where=url)
                    chunks.append(chunk)
                return b"".join(chunks)
        except httpx.HTTPError as error:
            raise FetchError(f"{type(error).__name__}: {error}", where=url) from None

    # -- indexes ---------------------------------------------------------------------------------

    def fetch_index(self, repo: RepositoryRef, arch: str) -> ApkIndex:
        """The repository's index for ``arch``, signature-verified against the keyring."""
        location = index_location(repo, arch)
        return read_index(self.read(location), where=location, keyring=self.keyring)

    def load_universe(self, repositories: Iterable[RepositoryRef], arch: str) -> Universe:
        """Every repository's verified index, merged in repository order (first one wins ties)."""
        universe = Universe(repositories=[], arch=arch)
        for repo in repositories:
            index = self.fetch_index(repo, arch)
            universe.add_repository(repo, index.packages)
        return universe

    # -- packages --------------------------------------------------------------------------------

    def fetch_package(self, repo: RepositoryRef, arch: str, info: PackageInfo) -> bytes:
        """The ``.apk`` bytes of ``info`` (an index record), checked against its index identity."""
        location = package_location(repo, arch, info)
        data = self.read(location)
        verify_package_bytes(data, info, where=location)
        return data

    def fetch_to_cache(
        self, repo: RepositoryRef, arch: str, info: PackageInfo, cache_dir: Path
    ) -> Path:
        """Download into ``cache_dir/<arch>/`` unless a verified copy is already there."""
        target = cache_dir / arch / info.filename
        if target.is_file():
            try:
                verify_package_bytes(target.read_bytes(), info, where=str(target))
                return target
            except NanodistroError:
                pass  # stale or damaged cache entry: fetch again
        data = self.fetch_package(repo, arch, info)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, data)
        return target


def verify_package_bytes(data: bytes, info: PackageInfo, *, where: str) -> None:
    """Check a package against its (signed) index record: size and ``C:`` identity."""
    if info.file_size is not None and len(data) != info.file_size:
        raise ChecksumError(
            f"size {len(data)} differs from the index ({info.file_size})", where=where
        )
    pkg = read_apk(data, where=where)
    if info.checksum is None:
        raise ChecksumError("the index gives no identity (C:) to check", where=where)
    if pkg.identity != info.checksum:
        raise ChecksumError(
            f"identity {pkg.identity} differs from the index ({info.checksum})", where=where
        )
