"""Parsed-index cache: an ``APKINDEX.tar.gz`` parsed once, reloaded by the digest of its bytes.

Parsing the Alpine main index (5,000 records) costs more than solving a world against it; the
result depends only on the index bytes, so it is kept under the SHA-256 of those bytes in
``$XDG_CACHE_HOME/nanodistro/index/`` (``~/.cache`` without it; ``$NANODISTRO_INDEX_CACHE``
names another folder, or ``off`` disables the cache). The newest ``MAX_ENTRIES`` are kept.

The cache never replaces verification: the caller checks the signature over the bytes it just
read on every read, and only then asks for the entry of *those* bytes' digest (``load``), so an
entry can only ever stand for an index that verified. What is trusted is that an entry holds
what this module wrote for that digest:

* the folder is created 0700, and an entry is used only when the folder and the file are owned
  by this user and writable by nobody else (opened relative to the folder's descriptor, without
  following links): another user cannot plant or change an entry;
* an entry starts with a magic, the SHA-256 of its payload and is keyed by digest inside too:
  a truncated, corrupt or mislabelled entry is ignored and rewritten.

The payload is ``marshal`` data of plain tuples, lists, strings, ints and bytes (the fastest
loader in the standard library): a summary of each package (what a universe is built from)
and each package's record, itself marshal bytes decoded only when the package is used.
``marshal`` must never read data from elsewhere: it only reads bytes that passed the checks
above, i.e. bytes this user's own nanodistro wrote and that are intact. Any anomaly means a
miss, never an error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import marshal
import os
import stat
import threading
from collections.abc import Mapping
from pathlib import Path

from nanodistro.formats.apkindex import ApkIndex
from nanodistro.formats.pkginfo import PackageInfo
from nanodistro.formats.signature import SignatureEntry
from nanodistro.resolve.universe import Summary, summary

__all__ = [
    "CACHE_ENV",
    "MAX_ENTRIES",
    "CachedIndex",
    "IndexCache",
    "Summary",
    "default_cache_dir",
    "index_digest",
]

#: ``off`` (or ``0``, ``no``, ``false``) disables the cache; any other value is its folder.
CACHE_ENV = "NANODISTRO_INDEX_CACHE"
_OFF = frozenset({"off", "0", "no", "false"})
_MAGIC = b"nanodistro-index-cache\n"
#: Bumped when the payload layout changes; PackageInfo's field names are checked as well.
_FORMAT = 5
_FIELDS = tuple(f.name for f in dataclasses.fields(PackageInfo))
_SUFFIX = ".idx"
#: Entries kept (a few MB each); the oldest written go first.
MAX_ENTRIES = 32
_new_object = object.__new__


def index_digest(data: bytes) -> str:
    """The cache key of an ``APKINDEX.tar.gz``: SHA-256 of its bytes, hex."""
    return hashlib.sha256(data).hexdigest()


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path | None:
    """``$NANODISTRO_INDEX_CACHE`` (None when it says ``off``), else
    ``$XDG_CACHE_HOME/nanodistro/index``, else ``~/.cache/nanodistro/index``."""
    env = os.environ if environ is None else environ
    explicit = env.get(CACHE_ENV, "").strip()
    if explicit.lower() in _OFF:
        return None
    if explicit:
        return Path(explicit)
    cache = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "nanodistro" / "index"


def _private(st: os.stat_result) -> bool:
    """Owned by this user and writable by nobody else."""
    return st.st_uid == os.geteuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


class IndexCache:
    """Entries in one folder; ``load``/``store`` never raise for cache trouble (a miss)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> IndexCache | None:
        directory = default_cache_dir(environ)
        return None if directory is None else cls(directory)

    def _open_dir(self, *, create: bool) -> int | None:
        """A descriptor of the folder if it is private to this user (created 0700 if asked)."""
        if create:
            with contextlib.suppress(OSError):
                self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            return None
        if _private(os.fstat(fd)):
            return fd
        os.close(fd)
        return None

    def load(self, digest: str) -> CachedIndex | None:
        """The entry stored for ``digest``, or None.

        Call only after the bytes with this digest passed signature verification.
        """
        dir_fd = self._open_dir(create=False)
        if dir_fd is None:
            return None
        try:
            fd = os.open(digest + _SUFFIX, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dir_fd)
        except OSError:
            return None
        finally:
            os.close(dir_fd)
        with os.fdopen(fd, "rb") as file:
            st = os.fstat(file.fileno())
            if not stat.S_ISREG(st.st_mode) or not _private(st):
                return None
            blob = file.read()
        try:
            return _decode(blob, digest)
        except Exception:  # any damage at all is a miss: the caller parses the index again
            return None

    def store(self, digest: str, index: ApkIndex | CachedIndex) -> None:
        """Write the entry for ``digest`` (atomically; a failure leaves no entry)."""
        entry = index if isinstance(index, CachedIndex) else CachedIndex.of(index)
        dir_fd = self._open_dir(create=True)
        if dir_fd is None:
            return
        # Unique per process and thread: concurrent writers of one digest never share a file.
        tmp = f".{digest}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            blob = _encode(entry, digest)
            fd = os.open(
                tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=dir_fd
            )
            with os.fdopen(fd, "wb") as file:
                file.write(blob)
            os.replace(tmp, digest + _SUFFIX, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            _prune(dir_fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)


def _prune(dir_fd: int) -> None:
    """Remove the oldest entries beyond ``MAX_ENTRIES`` (a rolling repository makes new ones)."""
    entries = []
    for name in os.listdir(dir_fd):
        if name.endswith(_SUFFIX):
            with contextlib.suppress(OSError):
                mtime = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mtime_ns
                entries.append((mtime, name))
    entries.sort(reverse=True)
    for _, name in entries[MAX_ENTRIES:]:
        with contextlib.suppress(OSError):
            os.unlink(name, dir_fd=dir_fd)


class CachedIndex:
    """A cache entry: the index's facts, a summary of each package for building a universe,
    and each package's full record, decoded on first use (``package``).

    A resolve looks at a few hundred of an index's thousands of packages: building only those
    records is most of what makes a cached read fast. ``of`` wraps a freshly parsed index the
    same way (its records are already built), so both paths build a universe alike.
    ``verified_by`` is set by the caller that just verified the index bytes.
    """

    __slots__ = (
        "description",
        "packages",
        "records",
        "signatures",
        "summaries",
        "timestamp",
        "verified_by",
    )

    def __init__(
        self,
        description: str | None,
        timestamp: int,
        signatures: list[SignatureEntry],
        summaries: list[Summary],
        records: list[bytes] | None,
        packages: list[PackageInfo] | None = None,
    ) -> None:
        self.description = description
        self.timestamp = timestamp
        self.signatures = signatures
        self.summaries = summaries
        self.records = records
        self.packages = packages
        self.verified_by: str | None = None

    @classmethod
    def of(cls, index: ApkIndex) -> CachedIndex:
        summaries = [summary(info) for info in index.packages]
        entry = cls(
            index.description, index.timestamp, index.signatures, summaries, None, index.packages
        )
        entry.verified_by = index.verified_by
        return entry

    def package(self, number: int) -> PackageInfo:
        """The full record of package ``number``."""
        if self.packages is not None:
            return self.packages[number]
        assert self.records is not None
        # Built as the parser's fast path builds them (no __init__); the dict is new, with
        # its own lists. Its keys are the fields (_FIELDS and the entry's checksum checked).
        info: PackageInfo = _new_object(PackageInfo)
        info.__dict__ = marshal.loads(self.records[number])
        return info

    def index(self) -> ApkIndex:
        """All of it as the parser gives it."""
        packages = [self.package(number) for number in range(len(self.summaries))]
        signatures = list(self.signatures)
        return ApkIndex(packages, self.description, signatures, self.verified_by, self.timestamp)


def _encode(entry: CachedIndex, digest: str) -> bytes:
    signatures = [(s.algorithm, s.keyname, s.signature) for s in entry.signatures]
    if entry.records is not None:
        records = entry.records
    else:
        assert entry.packages is not None
        records = [marshal.dumps(info.__dict__) for info in entry.packages]
    payload = marshal.dumps(
        (
            _FORMAT,
            digest,
            _FIELDS,
            entry.description,
            entry.timestamp,
            signatures,
            entry.summaries,
            records,
        )
    )
    return _MAGIC + hashlib.sha256(payload).digest() + payload


def _decode(blob: bytes, digest: str) -> CachedIndex | None:
    start = len(_MAGIC) + 32
    payload = memoryview(blob)[start:]  # not a copy of the megabytes
    if not blob.startswith(_MAGIC) or hashlib.sha256(payload).digest() != blob[len(_MAGIC) : start]:
        return None
    (fmt, stored_digest, fields, description, timestamp, signatures, summaries, records) = (
        marshal.loads(payload)
    )
    if fmt != _FORMAT or stored_digest != digest or tuple(fields) != _FIELDS:
        return None
    if len(summaries) != len(records):
        return None
    entries = [SignatureEntry(alg, key, sig) for alg, key, sig in signatures]
    return CachedIndex(description, timestamp, entries, summaries, records)
