"""Index replay protection: remember the newest index accepted from each repository.

A mirror (or anyone on the path) can serve an *older*, still validly signed ``APKINDEX.tar.gz``
and so pin clients to packages with known holes. APKINDEX v2 has no date field, so a client
remembers, per index location (repository URL + arch), what the last accepted index carried:

* its **timestamp**: the newest of the index tar's entry mtimes (set by the indexer when it
  signs: ``apk index`` writes the current time, ``nanodistro publish`` the newest build date)
  and the newest package ``t:`` build date (a lower bound on when any index holding it was
  made, for indexers that write mtime 0);
* the **newest version of every package name**.

A new index is refused when its timestamp is older than the remembered one, or when the
timestamp is equal and some name's newest version went down (same time, fewer or older
packages: a re-signed subset). A newer timestamp is accepted even if a name's newest version
went down: repositories withdraw broken builds, and that comes with a newer index. Names that
disappear are not a downgrade.

The state is a small JSON file (``default_state_path``), updated under a lock and replaced
atomically; ``allow_downgrade`` accepts an older index and remembers it as the newest.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from nanodistro.errors import FormatError, RepositoryError
from nanodistro.formats.apkindex import ApkIndex
from nanodistro.formats.version import compare
from nanodistro.resolve.universe import Summary

__all__ = [
    "STATE_ENV",
    "IndexMark",
    "IndexStateStore",
    "default_state_path",
    "downgrade_reason",
    "index_mark",
    "summaries_mark",
]

#: Environment variable naming the state file (the CLI's way to move it, e.g. in CI).
STATE_ENV = "NANODISTRO_INDEX_STATE"
STATE_VERSION = 1
#: Least recently accepted entries beyond this are forgotten (test servers on random ports).
MAX_ENTRIES = 512


def default_state_path() -> Path:
    """``$NANODISTRO_INDEX_STATE``, else ``$XDG_CACHE_HOME/nanodistro/index-state.json``,
    else ``~/.cache/nanodistro/index-state.json``."""
    explicit = os.environ.get(STATE_ENV)
    if explicit:
        return Path(explicit)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "nanodistro" / "index-state.json"


@dataclass(frozen=True)
class IndexMark:
    """What is remembered of one accepted index."""

    timestamp: int
    newest: dict[str, str]  # package name -> newest version in the index


def index_mark(index: ApkIndex) -> IndexMark:
    return _mark_of(index.timestamp, ((i.name, i.version, i.builddate) for i in index.packages))


def summaries_mark(timestamp: int, summaries: Iterable[Summary]) -> IndexMark:
    """``index_mark`` of a cached index (``resolve.index_cache``), from its summaries."""
    return _mark_of(timestamp, ((s[0], s[1], s[6]) for s in summaries))


def _mark_of(timestamp: int, packages: Iterable[tuple[str, str, int | None]]) -> IndexMark:
    newest: dict[str, str] = {}
    built = 0
    for name, version, builddate in packages:
        built = max(built, builddate or 0)
        current = newest.get(name)
        if current is None or _newer(version, current):
            newest[name] = version
    return IndexMark(max(timestamp, built), newest)


def _newer(a: str, b: str) -> bool:
    return compare(a, b) > 0  # total on any text, as apk-tools compares index versions


def downgrade_reason(old: IndexMark, new: IndexMark) -> str | None:
    """Why ``new`` is older than ``old``, or None when it may be accepted."""
    if new.timestamp < old.timestamp:
        return f"index timestamp {new.timestamp} is older than the accepted {old.timestamp}"
    if new.timestamp > old.timestamp:
        return None
    for name, version in sorted(new.newest.items()):
        before = old.newest.get(name)
        if before is not None and _newer(before, version):
            return (
                f"{name} went back from {before} to {version} in an index with the same "
                f"timestamp ({new.timestamp})"
            )
    return None


class IndexStateStore:
    """The state file: ``{"version": 1, "indexes": {location: {timestamp, newest, accepted}}}``."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_state_path()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # Concurrent clients each read-modify-write the file; flock serializes them and is
        # released by the kernel if a client dies.
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(
                f"{self.path}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600
            )
        except OSError as error:
            raise RepositoryError(
                f"cannot open the index state lock ({error.strerror}); set {STATE_ENV} to a "
                "writable file",
                where=f"{self.path}.lock",
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _load(self) -> dict[str, dict[str, object]]:
        import json  # only remote indexes have a state: a local resolve never loads json

        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as error:
            raise RepositoryError(
                f"cannot read the index state ({error.strerror})", where=str(self.path)
            ) from None
        try:
            doc = json.loads(text)
            indexes = doc["indexes"]
            if doc.get("version") != STATE_VERSION or not isinstance(indexes, dict):
                raise ValueError("unknown layout")
        except (ValueError, KeyError, TypeError, RecursionError) as error:
            raise FormatError(
                f"index state is not a version {STATE_VERSION} state file ({error}); "
                "delete it to start remembering afresh",
                where=str(self.path),
            ) from None
        return indexes

    def get(self, location: str) -> IndexMark | None:
        with self._locked():
            return _mark(self._load().get(location), where=str(self.path))

    def check_and_record(
        self, location: str, index: ApkIndex | IndexMark, *, allow_downgrade: bool = False
    ) -> IndexMark:
        """Refuse (``RepositoryError`` naming ``location``) an index older than the one last
        accepted from ``location``, unless ``allow_downgrade``; then remember it."""
        mark = index if isinstance(index, IndexMark) else index_mark(index)
        with self._locked():
            indexes = self._load()
            old = _mark(indexes.get(location), where=str(self.path))
            if old is not None:
                reason = downgrade_reason(old, mark)
                if reason is not None and not allow_downgrade:
                    raise RepositoryError(
                        f"refusing an older index than the one accepted before ({reason}); "
                        "a mirror may be replaying an old index (--allow-downgrade accepts it)",
                        where=location,
                    )
                if reason is None and old == mark:
                    return mark  # unchanged: no write (the common case)
            indexes[location] = {
                "timestamp": mark.timestamp,
                "newest": mark.newest,
                "accepted": time.time(),
            }
            if len(indexes) > MAX_ENTRIES:
                by_age = sorted(indexes, key=lambda k: _accepted(indexes[k]), reverse=True)
                indexes = {k: indexes[k] for k in by_age[:MAX_ENTRIES]}
            body = {"version": STATE_VERSION, "indexes": indexes}
            import json

            from nanodistro.util.atomic import atomic_write_text  # (tempfile: only on a write)

            atomic_write_text(self.path, json.dumps(body, sort_keys=True) + "\n", mode=0o600)
        return mark


def _accepted(entry: dict[str, object]) -> float:
    value = entry.get("accepted")
    return float(value) if isinstance(value, int | float) else 0.0


def _mark(entry: object, *, where: str) -> IndexMark | None:
    if entry is None:
        return None
    if not isinstance(entry, dict):
        raise FormatError("index state entry is not an object", where=where)
    timestamp = entry.get("timestamp")
    newest = entry.get("newest")
    if not isinstance(timestamp, int) or not isinstance(newest, dict):
        raise FormatError("index state entry lacks timestamp/newest", where=where)
    return IndexMark(timestamp, {str(k): str(v) for k, v in newest.items()})
