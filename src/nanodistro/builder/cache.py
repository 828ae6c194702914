"""Content-addressed cache of upstream sources, so a rebuild needs no network.

Layout under the cache root (default ``~/.cache/nanodistro/sources``)::

    sha256/<hex>          fetched objects, named by the digest of their bytes
    sha512/<hex>          hard link (or copy) of the same object under its SHA-512
    url/<sha256(uri)>     objects fetched with ``expected-none`` (no pin), keyed by their URI
    git/<sha256(repo)>.git  bare mirrors of git repositories

melange has the same idea: ``fetch`` first looks for ``/var/cache/melange/sha256:<hash>``
(pkg/build/pipelines/fetch.yaml). Entries are written atomically (temp file + rename), so a
crash never leaves a half-written object under its final name.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

DEFAULT_SOURCE_CACHE = Path("~/.cache/nanodistro/sources")


def default_cache_dir() -> Path:
    """``$NANODISTRO_SOURCE_CACHE`` if set, else ``~/.cache/nanodistro/sources``."""
    env = os.environ.get("NANODISTRO_SOURCE_CACHE")
    return Path(env) if env else DEFAULT_SOURCE_CACHE.expanduser()


class SourceCache:
    """A directory of verified source objects addressed by digest (or URI when unpinned)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or default_cache_dir()).expanduser()

    def object_path(self, algorithm: str, digest: str) -> Path:
        return self.root / algorithm / digest.lower()

    def url_path(self, uri: str) -> Path:
        return self.root / "url" / hashlib.sha256(uri.encode()).hexdigest()

    def git_mirror(self, repository: str) -> Path:
        return self.root / "git" / (hashlib.sha256(repository.encode()).hexdigest()[:40] + ".git")

    def lookup(self, algorithm: str, digest: str) -> Path | None:
        path = self.object_path(algorithm, digest)
        return path if path.is_file() else None

    def store(self, source: Path, digests: dict[str, str]) -> Path:
        """Move ``source`` (already verified) into the cache under every digest in ``digests``."""
        first: Path | None = None
        for algorithm, digest in sorted(digests.items()):
            target = self.object_path(algorithm, digest)
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_file():
                first = first or target
                continue
            tmp = _temp_name(target)
            with _removed_unless_renamed(tmp):
                if first is None:
                    shutil.copyfile(source, tmp)
                else:
                    try:
                        os.link(first, tmp)
                    except OSError:
                        shutil.copyfile(first, tmp)
                os.replace(tmp, target)
            first = first or target
        assert first is not None
        return first

    def store_unpinned(self, source: Path, uri: str) -> Path:
        target = self.url_path(uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temp_name(target)
        with _removed_unless_renamed(tmp):
            shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        return target


def file_digests(path: Path) -> dict[str, str]:
    """SHA-256 and SHA-512 of a file, read once."""
    sha256 = hashlib.sha256()
    sha512 = hashlib.sha512()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            sha256.update(chunk)
            sha512.update(chunk)
    return {"sha256": sha256.hexdigest(), "sha512": sha512.hexdigest()}


def _temp_name(target: Path) -> Path:
    # per process and thread: the factory fetches for several builds at once, and two of them
    # may store the same object (a shared tarball) at the same moment
    return target.with_name(f".{target.name}.{os.getpid()}-{threading.get_ident()}.tmp")


@contextlib.contextmanager
def _removed_unless_renamed(tmp: Path) -> Iterator[None]:
    """A failed or interrupted (Ctrl-C) copy leaves no half-written temp file in the cache."""
    try:
        yield
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
