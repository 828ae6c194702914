"""APK repositories: where indexes and packages come from, fetched and verified.

A repository is a local folder or an http(s) URL, optionally tagged (``@testing URL``, as in
``/etc/apk/repositories`` and apko configs, reference/formats.md §2.3). Its index is
``<repo>/<arch>/APKINDEX.tar.gz`` and a package ``<repo>/<arch>/<name>-<version>.apk``.

Trust (DESIGN invariant 5): every index is signature-checked against the keyring before any of
its records is used, and a downloaded package must have the identity the signed index gave it
(``C:`` = SHA-1 of the control gzip member), its ``S:`` size, and a data member whose SHA-256 is
the ``datahash`` of its ``.PKGINFO`` (which the identity covers, so the signed index binds the
data too) and whose files match their ``APK-TOOLS.checksum.SHA1``. A package without a
``datahash`` is refused: nothing signed binds its data. Old Alpine repositories hold such
packages; a repository written ``legacy:URL`` (``@tag legacy:URL``) admits them, as apk-tools 2
does.

Replay (``resolve.replay``): the newest index accepted from each remote repository and arch is
remembered, and an older one is refused unless ``allow_downgrade``. Redirects are followed by
hand so that every hop passes the same plain-http rule as the first URL.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from nanodistro.errors import ChecksumError, ConfigError, FetchError, NanodistroError
from nanodistro.formats.apkindex import ApkIndex, read_index, verify_index
from nanodistro.formats.pkginfo import PackageInfo
from nanodistro.resolve.index_cache import CachedIndex, IndexCache, index_digest
from nanodistro.resolve.replay import IndexStateStore, index_mark, summaries_mark
from nanodistro.resolve.universe import RepositoryRef, Universe, bulk_allocation

if TYPE_CHECKING:  # httpx is imported on the first remote read: local repositories never need it
    import httpx

    from nanodistro.util.progress import Progress

# Imported where used, not here: ``nanodistro resolve`` reads one index and never a package,
# and the package codec (pgzip, tar extraction), the HTTP helpers and tempfile cost it more
# start-up time than its whole solve (issue 18).

__all__ = [
    "LEGACY_PREFIX",
    "RepositoryClient",
    "RepositoryRef",
    "check_package_data",
    "index_location",
    "is_remote",
    "package_location",
    "parse_repository",
    "parse_repository_list",
    "refuse_unbound_data",
    "verify_package_bytes",
]


#: Refuse absurdly large downloads (the full Wolfi index is ~30 MB, big packages a few hundred).
MAX_DOWNLOAD = 2 * 1024**3
#: Redirect hops followed per request (httpx's own default is 20; mirrors need one or two).
MAX_REDIRECTS = 10
#: Prefix of a repository whose packages may lack a ``datahash`` (see the module docstring).
LEGACY_PREFIX = "legacy:"


def _ref(location: str, tag: str | None) -> RepositoryRef:
    legacy = location.startswith(LEGACY_PREFIX)
    url = location.removeprefix(LEGACY_PREFIX).rstrip("/")
    return RepositoryRef(url, tag, legacy=legacy) if url else RepositoryRef("", tag)


def parse_repository(spec: str, *, where: str = "repository") -> RepositoryRef:
    """``URL``, ``DIR`` or ``@tag URL`` (apk-tools ``repositories`` line, apko ``repositories``);
    ``legacy:URL`` marks a repository whose packages may lack a ``datahash``."""
    words = spec.split()
    ref: RepositoryRef | None = None
    if len(words) == 1 and not words[0].startswith("@"):
        ref = _ref(words[0], None)
    elif len(words) == 2 and words[0].startswith("@") and len(words[0]) > 1:
        ref = _ref(words[1], words[0][1:])
    if ref is None or not ref.url:
        raise ConfigError(
            f"invalid repository {spec!r} (expected URL, directory or '@tag URL', "
            "optionally 'legacy:URL')",
            where=where,
        )
    return ref


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


def _check_local_repository(repo: RepositoryRef, arch: str) -> None:
    """A missing folder or arch index is named as such: "not found" for an index file, or no
    packages at all, sends users looking for a package rather than for their --repo typo."""
    root = Path(urllib.parse.urlparse(repo.url).path if repo.url.startswith("file:") else repo.url)
    if not root.is_dir():
        what = "is not a directory" if root.exists() else "does not exist"
        raise FetchError(f"repository {what}", where=str(root))
    if not (root / arch / "APKINDEX.tar.gz").is_file():
        found = sorted(p.parent.name for p in root.glob("*/APKINDEX.tar.gz"))
        has = f"it has indexes for {', '.join(found)}" if found else "it has no index at all"
        raise FetchError(
            f"repository has no {arch}/APKINDEX.tar.gz ({has}; publish packages for "
            f"{arch} into it, or regenerate the index with 'nanodistro index')",
            where=str(root),
        )


def package_location(repo: RepositoryRef, arch: str, info: PackageInfo) -> str:
    return f"{repo.url}/{arch}/{info.filename}"


class RepositoryClient:
    """Reads indexes and packages from folders and http(s) URLs, verifying what it reads.

    ``keyring`` maps key file names to PEM public keys (``trust.keys.load_keyring``). Plain http
    is refused except to loopback hosts unless ``insecure=True`` (signatures still apply), on
    the first URL and on every redirect hop.

    Indexes of remote repositories are checked against the newest one accepted before
    (``resolve.replay``; ``index_state`` is the state file, default
    ``replay.default_state_path()``); ``allow_downgrade=True`` accepts an older one.

    ``index_cache`` keeps parsed indexes by the digest of their bytes (``resolve.index_cache``);
    the signature is checked on every read all the same.
    """

    def __init__(
        self,
        keyring: Mapping[str, bytes],
        *,
        insecure: bool = False,
        timeout: float = 60.0,
        client: httpx.Client | None = None,
        progress: Progress | None = None,
        allow_downgrade: bool = False,
        index_state: Path | None = None,
        index_cache: IndexCache | None = None,
    ) -> None:
        self.keyring = keyring
        self.index_cache = index_cache
        self.insecure = insecure
        self.progress = progress
        self.allow_downgrade = allow_downgrade
        self.index_state = IndexStateStore(index_state)
        self._timeout = timeout
        self._own_client = client is None
        # Created on the first remote read: building one loads the CA bundle (~20 ms), which
        # builds from local repositories never need.
        self._client_instance = client

    @property
    def _client(self) -> httpx.Client:
        if self._client_instance is None:
            import httpx

            # Redirects are followed by hand (``_get``): each hop is checked like the first URL.
            self._client_instance = httpx.Client(timeout=self._timeout, follow_redirects=False)
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

    def _check_url(self, url: str, *, origin: str | None) -> None:
        """The scheme and plain-http rules, for the first URL and every redirect target."""
        from nanodistro.util.http import plain_http_allowed

        parsed = urllib.parse.urlparse(url)
        via = f" (redirected from {origin})" if origin else ""
        if parsed.scheme not in ("http", "https"):
            raise FetchError(f"refusing a {parsed.scheme or 'relative'} URL{via}", where=url)
        if parsed.scheme == "http" and not plain_http_allowed(
            parsed.hostname or "", insecure=self.insecure
        ):
            raise FetchError(
                f"refusing plain http to a non-loopback host (use https, or --insecure){via}",
                where=url,
            )

    def _get(self, url: str) -> bytes:
        self._check_url(url, origin=None)
        if self.progress:
            self.progress(f"fetch {url}")
        import httpx

        from nanodistro.util.http import describe_http_error

        current = url
        for _hop in range(MAX_REDIRECTS + 1):
            try:
                with self._client.stream("GET", current, follow_redirects=False) as response:
                    if response.is_redirect:
                        target = str(response.url.join(response.headers["location"]))
                        self._check_url(target, origin=current)
                        current = target
                        continue
                    if response.status_code != 200:
                        raise FetchError(f"HTTP {response.status_code}", where=current)
                    chunks = []
                    size = 0
                    for chunk in response.iter_bytes():
                        size += len(chunk)
                        if size > MAX_DOWNLOAD:
                            raise FetchError(
                                f"response larger than {MAX_DOWNLOAD} bytes", where=current
                            )
                        chunks.append(chunk)
                    return b"".join(chunks)
            except httpx.HTTPError as error:
                raise FetchError(describe_http_error(error), where=current) from None
        raise FetchError(f"more than {MAX_REDIRECTS} redirects", where=url)

    # -- indexes ---------------------------------------------------------------------------------

    def fetch_index(self, repo: RepositoryRef, arch: str) -> ApkIndex:
        """The repository's index for ``arch``, signature-verified against the keyring and, for
        a remote repository, no older than the one accepted before (``resolve.replay``)."""
        index = self._read_index(repo, arch)
        return index.index() if isinstance(index, CachedIndex) else index

    def _read_index(self, repo: RepositoryRef, arch: str) -> ApkIndex | CachedIndex:
        """The verified index, parsed or (with a cache) as a cache entry; replay checked."""
        location = index_location(repo, arch)
        if not is_remote(location):
            _check_local_repository(repo, arch)
        data = self.read(location)
        index: ApkIndex | CachedIndex
        if self.index_cache is None:
            index = read_index(data, where=location, keyring=self.keyring)
        else:
            # Verification first and always: a cache entry only replaces the parse of bytes
            # that just verified (it is looked up by their digest).
            verified_by = verify_index(data, where=location, keyring=self.keyring)
            digest = index_digest(data)
            cached = self.index_cache.load(digest)
            if cached is None:  # parsed once, summarized once: for the entry and the universe
                cached = CachedIndex.of(read_index(data, where=location))
                self.index_cache.store(digest, cached)
            cached.verified_by = verified_by
            index = cached
        # Local folders are the user's own files (written by publish, or synced on purpose);
        # replay is a mirror's attack, and a reindex after removing a package is legitimate.
        if is_remote(location):
            mark = (
                summaries_mark(index.timestamp, index.summaries)
                if isinstance(index, CachedIndex)
                else index_mark(index)
            )
            self.index_state.check_and_record(location, mark, allow_downgrade=self.allow_downgrade)
        return index

    def load_universe(self, repositories: Iterable[RepositoryRef], arch: str) -> Universe:
        """Every repository's verified index, merged in repository order (first one wins ties).

        From a cache entry, a package's full record is only built when something reads its
        ``Candidate.info`` (the solver does for the packages it considers).
        """
        universe = Universe(repositories=[], arch=arch)
        with bulk_allocation():
            for repo in repositories:
                index = self._read_index(repo, arch)
                if isinstance(index, CachedIndex):
                    universe.add_summaries(repo, index.summaries, index.package)
                else:
                    universe.add_repository(repo, index.packages)
        return universe

    # -- packages --------------------------------------------------------------------------------

    def fetch_package(self, repo: RepositoryRef, arch: str, info: PackageInfo) -> bytes:
        """The ``.apk`` bytes of ``info`` (an index record), checked against its index identity."""
        location = package_location(repo, arch, info)
        data = self.read(location)
        verify_package_bytes(data, info, where=location, legacy=repo.legacy)
        return data

    def fetch_to_cache(
        self, repo: RepositoryRef, arch: str, info: PackageInfo, cache_dir: Path
    ) -> Path:
        """Download into ``cache_dir/<arch>/`` unless a verified copy is already there."""
        target = cache_dir / arch / info.filename
        if target.is_file():
            try:
                verify_package_bytes(
                    target.read_bytes(), info, where=str(target), legacy=repo.legacy
                )
                return target
            except NanodistroError:
                pass  # stale or damaged cache entry: fetch again
        from nanodistro.util.atomic import atomic_write_bytes

        data = self.fetch_package(repo, arch, info)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, data)
        return target


def verify_package_bytes(
    data: bytes, info: PackageInfo, *, where: str, legacy: bool = False
) -> None:
    """Check a package against its (signed) index record: size, ``C:`` identity, then the data
    member against ``.PKGINFO`` ``datahash`` and each file against its recorded SHA-1.

    Without a ``datahash`` the data is bound to nothing signed: refused unless ``legacy``.
    Errors name the package (``where`` is its URL or path) and what differed.
    """
    if info.file_size is not None and len(data) != info.file_size:
        raise ChecksumError(
            f"size {len(data)} differs from the index ({info.file_size})", where=where
        )
    from nanodistro.formats.apk import check_file_checksums, read_apk

    pkg = read_apk(data, where=where)
    if info.checksum is None:
        raise ChecksumError("the index gives no identity (C:) to check", where=where)
    if pkg.identity != info.checksum:
        raise ChecksumError(
            f"identity {pkg.identity} differs from the index ({info.checksum})", where=where
        )
    check_package_data(pkg.info, pkg.datahash_ok, pkg.data.sha256.hex(), where=where, legacy=legacy)
    check_file_checksums(pkg.entries, where=where)


def check_package_data(
    info: PackageInfo, datahash_ok: bool | None, data_sha256: str, *, where: str, legacy: bool
) -> None:
    """The data-member rule shared by resolve, the build environment and ``image build``."""
    if datahash_ok is None:
        refuse_unbound_data(info, where=where, legacy=legacy)
        return
    if not datahash_ok:
        raise ChecksumError(
            f"package {info.name}-{info.version}: data member sha256 {data_sha256} differs "
            f"from its datahash {info.datahash} (data swapped or corrupt)",
            where=where,
        )


def refuse_unbound_data(info: PackageInfo, *, where: str, legacy: bool) -> None:
    """A package without ``datahash``: its data is bound to nothing the index signs."""
    if info.datahash or legacy:
        return
    raise ChecksumError(
        f"package {info.name}-{info.version} has no datahash, so the signed index does not "
        "cover its data; refused (mark the repository 'legacy:URL' to accept such packages)",
        where=where,
    )
