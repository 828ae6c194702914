"""Numbered, immutable repository versions and the channels that point at them.

The working repository (``<repo>/<arch>/*.apk`` + signed ``APKINDEX.tar.gz``) stays where
publishes land and builds resolve from. :func:`snapshot` freezes its current state as
``<repo>/versions/<N>/``: per arch, a byte copy of the signed index and **hard links** of exactly
the packages it lists (each package is stored once, in the working repository), plus
``version.json`` (number, creation time, parent, per-arch index sha256 and package sha256s).
A package's signed provenance (``<file>.apk.intoto.jsonl``) is linked beside it.

A channel (``staging``, ``stable``) is the symlink ``<repo>/<channel> -> versions/<N>``, so an
``apk`` client given ``--repository <repo>/stable`` reads exactly that version. Moving one is a
temporary symlink renamed over the old one: a reader sees the old or the new version, never
neither.

Invariants (DESIGN.md 3, 4):

* **Immutable.** A version directory is written under a temporary name and renamed into place
  complete; nothing writes into it afterwards. Numbers are never reused: :func:`prune` always
  keeps the newest version, and a snapshot numbers after it.
* **Crash-safe.** A snapshot or prune killed half-way leaves a ``versions/.tmp-*`` or
  ``versions/.prune-*`` directory, never a partial ``versions/<N>``; the next snapshot, prune or
  channel move removes those (they run under the repository lock, ``repo/lock.py``, so no live
  process owns them).
* **Nothing referenced is lost.** :func:`prune` removes only versions that are not among the
  newest ``keep``, no channel's target and not ``protected`` (what images and lock files refer to:
  :func:`locked_versions`).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nanodistro.errors import ImageError, RepositoryError
from nanodistro.formats.signature import Keyring
from nanodistro.repo.lock import repository_lock
from nanodistro.repo.repository import INDEX_FILE, load_index
from nanodistro.trust.provenance import PROVENANCE_SUFFIX
from nanodistro.util.atomic import fsync_dir

__all__ = [
    "CHANNELS",
    "VERSIONS_DIR",
    "VERSION_FILE",
    "RepoVersion",
    "channel_version",
    "channels",
    "find_lock_files",
    "list_versions",
    "locked_versions",
    "prune",
    "read_version",
    "set_channel",
    "snapshot",
    "version_path",
]

VERSIONS_DIR = "versions"
VERSION_FILE = "version.json"
#: The channel names a repository may have (each a symlink ``<repo>/<name>``). Fixed, so a
#: channel can never shadow an arch directory.
CHANNELS = ("staging", "stable")

_NUMBER = re.compile(r"^[1-9][0-9]*$")
_ARCH = re.compile(r"^[A-Za-z0-9_]+$")
_PACKAGE_FILE = re.compile(r"^[A-Za-z0-9_+][A-Za-z0-9_+.~-]*\.apk$")
_TEMP_PREFIXES = (".tmp-", ".prune-")
_READ_SIZE = 1 << 20


@dataclass(frozen=True)
class RepoVersion:
    """What ``versions/<N>/version.json`` records."""

    number: int
    path: Path
    created: str  # ISO-8601 UTC
    parent: int | None
    #: arch -> package file name -> sha256
    packages: dict[str, dict[str, str]] = field(default_factory=dict)
    #: arch -> sha256 of the signed index
    indexes: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.number,
            "path": str(self.path),
            "created": self.created,
            "parent": self.parent,
            "archs": {
                arch: {"index_sha256": self.indexes.get(arch, ""), "packages": files}
                for arch, files in sorted(self.packages.items())
            },
        }


# -- reading -----------------------------------------------------------------------------------


def version_path(repo: Path, number: int) -> Path:
    return Path(repo) / VERSIONS_DIR / str(number)


def list_versions(repo: Path) -> list[int]:
    """The version numbers present, oldest first."""
    try:
        names = os.listdir(Path(repo) / VERSIONS_DIR)
    except FileNotFoundError:
        return []
    except OSError as error:
        raise RepositoryError(
            f"cannot list versions ({error.strerror})", where=str(Path(repo) / VERSIONS_DIR)
        ) from None
    return sorted(int(name) for name in names if _NUMBER.match(name))


def read_version(repo: Path, number: int) -> RepoVersion:
    """Load ``versions/<number>/version.json``."""
    path = version_path(repo, number)
    where = str(path / VERSION_FILE)
    try:
        document = json.loads((path / VERSION_FILE).read_bytes())
    except FileNotFoundError:
        raise RepositoryError(f"no repository version {number}", where=str(path)) from None
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise RepositoryError(f"unreadable version file ({error})", where=where) from None
    archs = document.get("archs") if isinstance(document, dict) else None
    if not isinstance(archs, dict) or document.get("version") != number:
        raise RepositoryError(f"expected version {number} with an 'archs' object", where=where)
    packages: dict[str, dict[str, str]] = {}
    indexes: dict[str, str] = {}
    for arch, entry in archs.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("packages"), dict):
            raise RepositoryError("expected {index_sha256, packages}", where=where, field=arch)
        packages[arch] = {str(k): str(v) for k, v in entry["packages"].items()}
        indexes[arch] = str(entry.get("index_sha256", ""))
    parent = document.get("parent")
    return RepoVersion(
        number=number,
        path=path,
        created=str(document.get("created", "")),
        parent=parent if isinstance(parent, int) else None,
        packages=packages,
        indexes=indexes,
    )


def _check_channel(channel: str) -> None:
    if channel not in CHANNELS:
        raise RepositoryError(
            f"unknown channel {channel!r}, expected one of {', '.join(CHANNELS)}", field="channel"
        )


def channel_version(repo: Path, channel: str) -> int | None:
    """The version ``<repo>/<channel>`` points at; None when the channel is not set."""
    _check_channel(channel)
    link = Path(repo) / channel
    try:
        target = os.readlink(link)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise RepositoryError(
            f"channel is not a symlink to {VERSIONS_DIR}/<N> ({error.strerror})", where=str(link)
        ) from None
    head, _, number = target.partition("/")
    if head != VERSIONS_DIR or not _NUMBER.match(number):
        raise RepositoryError(
            f"channel points at {target!r}, expected {VERSIONS_DIR}/<N>", where=str(link)
        )
    return int(number)


def channels(repo: Path) -> dict[str, int]:
    """Every channel that is set: name -> version."""
    found = {name: channel_version(repo, name) for name in CHANNELS}
    return {name: number for name, number in found.items() if number is not None}


# -- snapshot ----------------------------------------------------------------------------------


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_READ_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def _working_indexes(repo: Path) -> dict[str, bytes]:
    """arch -> signed index bytes of the working repository. Only real directories count:
    channels are symlinks and ``versions/`` is not an arch."""
    heads: dict[str, bytes] = {}
    try:
        entries = sorted(os.scandir(repo), key=lambda e: e.name)
    except FileNotFoundError:
        raise RepositoryError("no such repository directory", where=str(repo)) from None
    for entry in entries:
        if entry.name.startswith(".") or entry.name == VERSIONS_DIR or not _ARCH.match(entry.name):
            continue
        if not entry.is_dir(follow_symlinks=False):
            continue
        index = Path(entry.path) / INDEX_FILE
        try:
            if not stat.S_ISREG(os.lstat(index).st_mode):
                raise RepositoryError("index is not a regular file", where=str(index))
            heads[entry.name] = index.read_bytes()
        except FileNotFoundError:
            continue
        except OSError as error:
            raise RepositoryError(
                f"cannot read index ({error.strerror})", where=str(index)
            ) from None
    return heads


def _same_as(repo: Path, number: int, heads: Mapping[str, bytes]) -> bool:
    base = version_path(repo, number)
    if sorted(heads) != sorted(p.name for p in base.iterdir() if p.is_dir() and not p.is_symlink()):
        return False
    for arch, data in heads.items():
        try:
            if (base / arch / INDEX_FILE).read_bytes() != data:
                return False
        except OSError:
            return False
    return True


def _remove_temporaries(repo: Path) -> list[Path]:
    """Leftovers of a killed snapshot or prune (``versions/.tmp-*``, ``versions/.prune-*``)
    and of a killed channel move (``<repo>/.<channel>.*.tmp``). Caller holds the lock."""
    removed: list[Path] = []
    versions = Path(repo) / VERSIONS_DIR
    if versions.is_dir():
        for entry in sorted(os.scandir(versions), key=lambda e: e.name):
            if entry.name.startswith(_TEMP_PREFIXES) and entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(Path(entry.path))
    for channel in CHANNELS:
        for leftover in Path(repo).glob(f".{channel}.*.tmp"):
            if leftover.is_symlink():
                leftover.unlink(missing_ok=True)
                removed.append(leftover)
    return removed


def _link(source: Path, target: Path) -> None:
    """Hard link (the package stays stored once); a copy where the file system refuses."""
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError:
        shutil.copyfile(source, target, follow_symlinks=False)


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    path.chmod(0o644)


def _freeze_arch(
    repo: Path,
    arch: str,
    data: bytes,
    staging: Path,
    keyring: Keyring | None,
    previous: RepoVersion | None,
) -> dict[str, str]:
    """Write ``staging/<arch>``: the index bytes and a link per listed package."""
    source_dir = repo / arch
    where = str(source_dir / INDEX_FILE)
    index = load_index(source_dir, keyring)
    if index is None:  # removed between reading and loading: we hold the lock, so unlikely
        raise RepositoryError("index disappeared during the snapshot", where=where)
    target_dir = staging / arch
    target_dir.mkdir(mode=0o755)
    _write_synced(target_dir / INDEX_FILE, data)
    known = previous.packages.get(arch, {}) if previous else {}
    files: dict[str, str] = {}
    for info in index.packages:
        name = info.filename
        if not _PACKAGE_FILE.match(name):
            raise RepositoryError(f"index lists {name!r}, not a package file name", where=where)
        source = source_dir / name
        try:
            st = os.lstat(source)
        except FileNotFoundError:
            raise RepositoryError(
                f"index lists {name} but the repository has no such file", where=where
            ) from None
        if not stat.S_ISREG(st.st_mode):
            raise RepositoryError("package is not a regular file", where=str(source))
        sha256 = None
        if name in known and previous is not None:
            # The same inode as the previous version's link is the same immutable file.
            try:
                old = os.lstat(previous.path / arch / name)
                if (old.st_dev, old.st_ino) == (st.st_dev, st.st_ino):
                    sha256 = known[name]
            except OSError:
                pass
        files[name] = sha256 or _sha256_file(source)
        _link(source, target_dir / name)
        # the package's signed provenance travels with it (immutable like the package)
        attestation = source_dir / (name + PROVENANCE_SUFFIX)
        try:
            if stat.S_ISREG(os.lstat(attestation).st_mode):
                _link(attestation, target_dir / attestation.name)
        except FileNotFoundError:
            pass
    fsync_dir(target_dir)
    return files


def snapshot(
    repo: Path,
    *,
    keyring: Keyring | None = None,
    now: datetime.datetime | None = None,
    progress: Callable[[str], None] | None = None,
) -> int:
    """Freeze the working repository as a new version and return its number; when every arch's
    index equals the newest version's, return that version instead (idempotent).

    ``keyring``: verify each index before freezing it (recommended; the index bytes are copied
    as they are either way, so clients verify them against their own keys).
    """
    repo = Path(repo)
    say = progress or (lambda _message: None)
    with repository_lock(repo):
        for leftover in _remove_temporaries(repo):
            say(f"removed {leftover.relative_to(repo)} (left by a crashed snapshot)")
        heads = _working_indexes(repo)
        if not heads:
            raise RepositoryError(
                f"nothing to snapshot: no ARCH/{INDEX_FILE} in the repository", where=str(repo)
            )
        existing = list_versions(repo)
        newest = existing[-1] if existing else None
        if newest is not None and _same_as(repo, newest, heads):
            return newest
        previous = read_version(repo, newest) if newest is not None else None
        number = (newest or 0) + 1
        versions = repo / VERSIONS_DIR
        versions.mkdir(mode=0o755, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".tmp-{number}-", dir=versions))
        try:
            staging.chmod(0o755)  # mkdtemp's 0700 would hide it from a web server
            packages: dict[str, dict[str, str]] = {}
            indexes: dict[str, str] = {}
            for arch, data in heads.items():
                packages[arch] = _freeze_arch(repo, arch, data, staging, keyring, previous)
                indexes[arch] = hashlib.sha256(data).hexdigest()
            created = (now or datetime.datetime.now(datetime.UTC)).astimezone(datetime.UTC)
            record = RepoVersion(
                number=number,
                path=version_path(repo, number),
                created=created.isoformat().replace("+00:00", "Z"),
                parent=newest,
                packages=packages,
                indexes=indexes,
            )
            document = record.to_json()
            del document["path"]  # the file stays valid when the repository moves
            _write_synced(staging / VERSION_FILE, (json.dumps(document, indent=2) + "\n").encode())
            fsync_dir(staging)
            os.rename(staging, record.path)
            fsync_dir(versions)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        say(
            f"version {number}: " + ", ".join(f"{a} {len(p)} packages" for a, p in packages.items())
        )
        return number


# -- channels ----------------------------------------------------------------------------------


def set_channel(repo: Path, channel: str, number: int) -> int | None:
    """Point ``<repo>/<channel>`` at ``versions/<number>`` atomically; return the version it
    pointed at before (None if unset)."""
    _check_channel(channel)
    repo = Path(repo)
    with repository_lock(repo):
        _remove_temporaries(repo)
        if not (version_path(repo, number) / VERSION_FILE).is_file():
            raise RepositoryError(
                f"no repository version {number} (have: "
                f"{', '.join(map(str, list_versions(repo))) or 'none'})",
                where=str(repo),
            )
        link = repo / channel
        if link.exists() and not link.is_symlink():
            raise RepositoryError(
                "a file or directory is in the channel's place; move it away", where=str(link)
            )
        before = channel_version(repo, channel)
        temporary = repo / f".{channel}.{os.urandom(4).hex()}.tmp"
        os.symlink(f"{VERSIONS_DIR}/{number}", temporary)
        try:
            os.replace(temporary, link)
        except OSError as error:
            temporary.unlink(missing_ok=True)
            raise RepositoryError(
                f"cannot move the channel ({error.strerror})", where=str(link)
            ) from None
        fsync_dir(repo)
        return before


# -- retention ---------------------------------------------------------------------------------


def prune(
    repo: Path, keep: int, protected: Iterable[int] = (), *, dry_run: bool = False
) -> list[int]:
    """Remove the versions that are not among the newest ``keep`` (at least 1, so numbers are
    never reused), not a channel's target and not in ``protected``; return them, oldest first.
    Packages stay in the working repository; only the version's links and index copy go."""
    if keep < 1:
        raise RepositoryError(
            f"--keep must be at least 1 (the newest version is always kept), got {keep}",
            field="keep",
        )
    repo = Path(repo)
    with repository_lock(repo):
        _remove_temporaries(repo)
        existing = list_versions(repo)
        kept = set(existing[-keep:]) | set(channels(repo).values()) | set(protected)
        doomed = [n for n in existing if n not in kept]
        if dry_run:
            return doomed
        versions = repo / VERSIONS_DIR
        for number in doomed:
            # Renamed away first, so a prune killed mid-delete never leaves a partial
            # versions/<N> that looks like a version.
            gone = versions / f".prune-{number}-{os.urandom(4).hex()}"
            os.rename(version_path(repo, number), gone)
            fsync_dir(versions)
            shutil.rmtree(gone)
        return doomed


def find_lock_files(root: Path) -> list[Path]:
    """Every ``*.lock.json`` under ``root``, not descending into hidden directories, OCI blob
    stores or repository versions (which hold none and can be large)."""
    found: list[Path] = []
    for directory, subdirs, files in os.walk(root, followlinks=False):
        subdirs[:] = sorted(
            d for d in subdirs if not d.startswith(".") and d not in (VERSIONS_DIR, "blobs")
        )
        found.extend(Path(directory) / f for f in sorted(files) if f.endswith(".lock.json"))
    return found


def _repository_location(text: str) -> str:
    """``@tag legacy:URL`` -> ``URL`` (apk repositories-file syntax and our markers)."""
    text = text.strip()
    if text.startswith("@"):
        text = text.partition(" ")[2].strip()
    return text.removeprefix("legacy:")


def _reference(repo: Path, text: str, base: Path) -> tuple[str, str] | None:
    """What a lock file's repository or package URL names in ``repo``: ("version", "3"),
    ("channel", "stable") or None. URLs match by the repository directory's name followed by
    ``versions/<N>`` or a channel (the host cannot be matched against a local path)."""
    location = _repository_location(text)
    parsed = urllib.parse.urlsplit(location)
    if parsed.scheme and parsed.scheme != "file":
        parts = [p for p in urllib.parse.unquote(parsed.path).split("/") if p]
        for i, part in enumerate(parts[:-1]):
            if part != repo.name:
                continue
            rest = parts[i + 1 :]
            if rest[0] == VERSIONS_DIR and len(rest) > 1 and _NUMBER.match(rest[1]):
                return ("version", rest[1])
            if rest[0] in CHANNELS:
                return ("channel", rest[0])
        return None
    path = Path(parsed.path if parsed.scheme == "file" else location)
    absolute = Path(os.path.normpath(base / path))  # channels are symlinks: do not resolve them
    for root in {Path(os.path.normpath(repo.absolute())), repo.resolve()}:
        try:
            parts = list(absolute.relative_to(root).parts)
        except ValueError:
            continue
        if len(parts) >= 2 and parts[0] == VERSIONS_DIR and _NUMBER.match(parts[1]):
            return ("version", parts[1])
        if parts and parts[0] in CHANNELS:
            return ("channel", parts[0])
    return None


def locked_versions(repo: Path, lock_files: Iterable[Path]) -> set[int]:
    """Versions of ``repo`` that lock files refer to.

    A lock naming ``<repo>/versions/<N>`` (a repository or a package URL) protects N. A lock
    naming a channel was resolved against whatever the channel pointed at then; it protects the
    newest version that still holds every package the lock took from that channel (any such
    version reproduces the lock), and the channel's current target.
    """
    from nanodistro.image.lock import read_lock  # image/ is a sibling engine; only this needs it

    repo = Path(repo)
    existing = list_versions(repo)
    protected: set[int] = set()
    for lock_path in lock_files:
        try:
            lock = read_lock(lock_path)
        except ImageError as error:
            # A lock we cannot read might protect anything: refuse rather than guess.
            raise RepositoryError(
                f"cannot tell which versions this lock file needs: {error.message}",
                where=str(lock_path),
            ) from None
        base = lock.base_dir or Path(lock_path).parent
        channel_packages: dict[str, set[tuple[str, str]]] = {}
        texts = [str(r.get("name", "")) for r in lock.repositories]
        texts += [str(r.get("url", "")) for r in lock.repositories]
        for text in texts:
            named = _reference(repo, text, base) if text else None
            if named and named[0] == "version":
                protected.add(int(named[1]))
            elif named:
                channel_packages.setdefault(named[1], set())
        for package in lock.packages:
            for text in (package.url, package.repository):
                named = _reference(repo, text, base) if text else None
                if named and named[0] == "version":
                    protected.add(int(named[1]))
                elif named:
                    filename = f"{package.name}-{package.version}.apk"
                    channel_packages.setdefault(named[1], set()).add(
                        (package.architecture, filename)
                    )
        for channel, wanted in channel_packages.items():
            current = channel_version(repo, channel)
            if current is not None:
                protected.add(current)
            for number in reversed(existing):
                held = read_version(repo, number).packages
                if all(name in held.get(arch, {}) for arch, name in wanted):
                    protected.add(number)
                    break
    return protected
