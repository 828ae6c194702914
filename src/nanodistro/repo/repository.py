"""A signed local APK repository: ``<repo>/<arch>/<name>-<version>.apk`` + ``APKINDEX.tar.gz``.

Invariants (DESIGN.md 3, 5):

* **Immutable.** A published file never changes. Publishing different bytes under an existing
  ``<name>-<version>.apk`` is refused; publishing identical bytes is a no-op.
* **Atomic.** Package files are written to a temporary sibling, fsynced and renamed into place;
  each arch's index is regenerated and renamed into place *after* all its packages landed. A
  crash at any point leaves the previous index, which only names files that exist.
* **Serialized.** Publishers hold ``<repo>/.lock`` (``repo.lock``), so two processes publishing
  at once both land in the index.
* **Verified.** Before anything is written, every package must be signed by ``key`` or a key
  of the given keyring, match its datahash and file checksums, and hold no entry extraction
  would refuse (``repo/admission.py``); the existing index is signature-checked before it is
  merged. A refused publish leaves the repository byte-identical.
* **Crash leftovers** (temporary files of a killed publisher) are removed by the next one
  under the lock (``repo/leftovers.py``).

``noarch`` packages are placed in every arch directory of the repository (as melange does for
each target arch): the arch directories present, plus those of the other packages in the same
call; in an empty repository, ``DEFAULT_NOARCH_ARCHS``. Pass ``noarch_archs`` to choose.
Arch directories created later do not receive earlier noarch packages; publish them again.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from nanodistro.errors import FormatError, NanodistroError, RepositoryError
from nanodistro.formats.apk import ApkPackage
from nanodistro.formats.apkindex import (
    ApkIndex,
    index_record,
    read_index,
    write_index,
)
from nanodistro.formats.pkginfo import PackageInfo
from nanodistro.formats.signature import Keyring, SigningKey
from nanodistro.formats.version import is_valid as is_valid_version
from nanodistro.repo.admission import admit_package
from nanodistro.repo.consistency import Upstream, check_consistency
from nanodistro.repo.leftovers import remove_leftovers
from nanodistro.repo.lock import repository_lock
from nanodistro.trust.provenance import PROVENANCE_SUFFIX, provenance_path
from nanodistro.util.atomic import atomic_write_bytes, atomic_writer
from nanodistro.util.crashpoints import crash_point
from nanodistro.util.progress import Progress

INDEX_FILE = "APKINDEX.tar.gz"
NOARCH = "noarch"
DEFAULT_NOARCH_ARCHS = ("x86_64", "aarch64")

_NAME = re.compile(r"^[A-Za-z0-9_+][A-Za-z0-9_+.-]*$")
_ARCH = re.compile(r"^[A-Za-z0-9_]+$")


@dataclass(frozen=True)
class PublishedPackage:
    name: str
    version: str
    arch: str  # the directory it landed in (a noarch package lands in several)
    path: Path
    sha256: str
    checksum: str  # Q1 identity, the index C:
    status: Literal["added", "unchanged"]
    provenance: Path | None = None  # <file>.apk.intoto.jsonl beside it, when published with one


@dataclass
class PublishResult:
    packages: list[PublishedPackage] = field(default_factory=list)
    #: arch -> path of the regenerated index
    indexes: dict[str, Path] = field(default_factory=dict)

    @property
    def added(self) -> list[PublishedPackage]:
        return [p for p in self.packages if p.status == "added"]


@dataclass(frozen=True)
class _Candidate:
    source: Path
    data: bytes
    info: PackageInfo  # index record (checksum and file size set)
    sha256: str


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_names(info: PackageInfo, where: str) -> None:
    if not _NAME.match(info.name):
        raise RepositoryError(f"package name {info.name!r} cannot be a file name", where=where)
    if not is_valid_version(info.version):
        raise RepositoryError(f"invalid package version {info.version!r}", where=where)
    if not _ARCH.match(info.arch):
        raise RepositoryError(
            f"package arch {info.arch!r} is missing or not a directory name", where=where
        )


def _read_package(path: Path, trusted: Keyring) -> _Candidate:
    where = str(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise RepositoryError(f"cannot read package ({error.strerror})", where=where) from None
    pkg: ApkPackage = admit_package(data, where=where, trusted=trusted)  # repo/admission.py
    _check_names(pkg.info, where)
    return _Candidate(path, data, index_record(pkg.info), _sha256(data))


def _index_keyring(key: SigningKey, keyring: Keyring | None) -> dict[str, bytes]:
    trusted = dict(keyring or {})
    trusted[key.keyname] = key.public_pem()
    return trusted


def load_index(arch_dir: Path, keyring: Keyring | None) -> ApkIndex | None:
    """Read ``<arch_dir>/APKINDEX.tar.gz`` (verified when ``keyring`` is given); None if absent."""
    path = Path(arch_dir) / INDEX_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise RepositoryError(f"cannot read index ({error.strerror})", where=str(path)) from None
    return read_index(data, where=str(path), keyring=keyring)


def _existing_arch_dirs(repo: Path) -> list[str]:
    if not repo.is_dir():
        return []
    # Channels (``stable -> versions/<N>``) are symlinks and ``versions/`` holds frozen
    # versions (repo/versions.py): a publish must never write into either.
    return sorted(
        p.name
        for p in repo.iterdir()
        if p.is_dir()
        and not p.is_symlink()
        and not p.name.startswith(".")
        and _ARCH.match(p.name)
        and p.name not in (NOARCH, "versions")
    )


def _index_epoch(packages: Iterable[PackageInfo]) -> int:
    """Tar mtime for the index: the newest build date, so equal contents give equal bytes."""
    return max((p.builddate or 0 for p in packages), default=0)


def _write_arch_index(
    arch_dir: Path,
    packages: Sequence[PackageInfo],
    key: SigningKey,
    description: str | None,
) -> Path:
    data = write_index(
        packages, description=description, key=key, source_date_epoch=_index_epoch(packages)
    )
    path = arch_dir / INDEX_FILE
    try:
        unchanged = path.read_bytes() == data
    except OSError:
        unchanged = False
    if not unchanged:  # an idempotent publish leaves the file (and its mtime) alone
        with atomic_writer(path) as handle:
            handle.write(data)
            crash_point("during-index-write")  # crash tests: written, not yet renamed
    return path


def publish(
    files: Sequence[Path],
    repo: Path,
    key: SigningKey,
    keyring: Keyring | None = None,
    *,
    description: str | None = None,
    noarch_archs: Sequence[str] | None = None,
    progress: Progress | None = None,
    allow_missing: bool = False,
    upstream: Callable[[str], Upstream] | None = None,
    origins: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
    host_provides: Callable[[str], bool] | None = None,
    provenance: Mapping[str, bytes] | None = None,
) -> PublishResult:
    """Publish ``.apk`` files into ``repo`` and re-sign the index of every arch touched.

    Each package must pass ``admit_package``, signed by ``key`` or a key of ``keyring``. The
    existing index of an arch is verified with ``keyring`` plus ``key``'s public key before
    being merged (entries with the same name and version are replaced; others kept, as
    melange's index merge).

    Unless ``allow_missing``, each resulting index must give every dependency a provider (in it
    or in ``upstream(arch)``), else :class:`ConsistencyError` before anything is written
    (``repo/consistency.py``; ``origins`` and ``host_provides`` only explain the message).

    ``provenance`` maps a package file name to its ``.intoto.jsonl`` bytes (signed SLSA
    provenance, ``trust/provenance.py``), written beside each placement of that package as
    ``<file>.apk.intoto.jsonl`` *before* the package, so a package never appears without it.
    It is immutable like the package: a different provenance for a package already published
    is refused (identical bytes are a no-op); one left without its package by a crashed publish
    was never part of the repository and is replaced.
    """
    repo = Path(repo)
    say = progress or (lambda _message: None)
    candidates = [_read_package(Path(f), _index_keyring(key, keyring)) for f in files]
    attestations = dict(provenance or {})
    unknown = sorted(set(attestations) - {c.info.filename for c in candidates})
    if unknown:
        raise RepositoryError(
            f"provenance given for {unknown[0]}, which is not among the packages published",
            where=str(repo),
        )
    with repository_lock(repo):
        arch_dirs = [repo / arch for arch in _existing_arch_dirs(repo)]
        for leftover in remove_leftovers([repo, *arch_dirs]):
            say(f"removed {leftover.relative_to(repo)} (left by a crashed publish)")
        # 1. Decide where every file goes and refuse conflicts before writing anything.
        explicit_archs = sorted({c.info.arch for c in candidates if c.info.arch != NOARCH})
        if noarch_archs is not None:
            noarch_targets = list(noarch_archs)
        else:
            noarch_targets = sorted(set(_existing_arch_dirs(repo)) | set(explicit_archs))
            noarch_targets = noarch_targets or list(DEFAULT_NOARCH_ARCHS)
        for arch in noarch_targets:
            if not _ARCH.match(arch) or arch == NOARCH:
                raise RepositoryError(f"invalid arch {arch!r} for noarch packages", where=str(repo))
        placements: dict[Path, _Candidate] = {}
        for candidate in candidates:
            info = candidate.info
            archs = noarch_targets if info.arch == NOARCH else [info.arch]
            for arch in archs:
                target = repo / arch / info.filename
                other = placements.get(target)
                if other is not None and other.sha256 != candidate.sha256:
                    raise RepositoryError(
                        f"{info.filename} given twice with different content "
                        f"({other.source} and {candidate.source})",
                        where=str(target),
                    )
                placements[target] = candidate
        status: dict[Path, Literal["added", "unchanged"]] = {}
        for target, candidate in placements.items():
            try:
                existing = target.read_bytes()
            except FileNotFoundError:
                status[target] = "added"
                continue
            except OSError as error:
                raise RepositoryError(
                    f"cannot read published file ({error.strerror})", where=str(target)
                ) from None
            existing_sha = _sha256(existing)
            if existing_sha != candidate.sha256:
                raise RepositoryError(
                    f"immutable: {candidate.info.filename} already published with sha256 "
                    f"{existing_sha}, refusing {candidate.sha256} from {candidate.source}",
                    where=str(target),
                )
            status[target] = "unchanged"
        for target, candidate in placements.items():
            statement = attestations.get(candidate.info.filename)
            if statement is None or status[target] != "unchanged":
                continue
            existing_provenance = _read_optional(provenance_path(target))
            if existing_provenance is not None and existing_provenance != statement:
                raise RepositoryError(
                    f"immutable: {candidate.info.filename} is already published with another "
                    f"provenance; refusing a different {PROVENANCE_SUFFIX}",
                    where=str(provenance_path(target)),
                )

        # 2. Verify and load the current indexes of the arches we touch.
        trusted = _index_keyring(key, keyring)
        touched = sorted({target.parent.name for target in placements})
        current: dict[str, ApkIndex | None] = {}
        for arch in touched:
            try:
                current[arch] = load_index(repo / arch, trusted)
            except NanodistroError as error:
                raise RepositoryError(
                    f"existing index cannot be merged: {error}; "
                    f"regenerate it with 'nanodistro index {repo / arch}'",
                    where=str(repo / arch / INDEX_FILE),
                ) from None

        merged_indexes = {arch: _merged(current[arch], placements, arch) for arch in touched}
        if not allow_missing:
            reports = check_consistency(
                merged_indexes,
                where=str(repo),
                upstream=upstream,
                origins=origins,
                host_provides=host_provides,
                baseline={arch: _merged(current[arch], {}, arch) for arch in touched},
            )
            for report in reports:
                for problem in report.preexisting:
                    say(f"warning: {report.arch}: already in the repository: {problem}")

        # 3. Packages first (new names only), then each index atomically.
        result = PublishResult()
        for target, candidate in sorted(placements.items()):
            statement = attestations.get(candidate.info.filename)
            provenance_file = provenance_path(target) if statement is not None else None
            # provenance first: a package is never visible without it
            if (
                provenance_file is not None
                and statement is not None
                and _read_optional(provenance_file) != statement
            ):
                atomic_write_bytes(provenance_file, statement)
            if status[target] == "added":
                say(f"publishing {target.relative_to(repo)}")
                atomic_write_bytes(target, candidate.data)
            info = candidate.info
            result.packages.append(
                PublishedPackage(
                    info.name,
                    info.version,
                    target.parent.name,
                    target,
                    candidate.sha256,
                    info.checksum or "",
                    status[target],
                    provenance_file,
                )
            )
        for arch in touched:
            old = current[arch]
            merged = merged_indexes[arch]
            text = description if description is not None else (old.description if old else None)
            say(f"signing {arch}/{INDEX_FILE} ({len(merged)} packages)")
            result.indexes[arch] = _write_arch_index(repo / arch, merged, key, text)
    return result


def _read_optional(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise RepositoryError(
            f"cannot read published file ({error.strerror})", where=str(path)
        ) from None


def _merged(
    old: ApkIndex | None, placements: Mapping[Path, _Candidate], arch: str
) -> list[PackageInfo]:
    """The index of ``arch`` after the publish: new packages replace same name-version."""
    merged: dict[str, PackageInfo] = {}
    if old is not None:
        merged.update(old.by_filename())
    for target, candidate in placements.items():
        if target.parent.name == arch:
            merged[candidate.info.filename] = candidate.info
    return list(merged.values())


def reindex(
    arch_dir: Path,
    key: SigningKey,
    description: str | None = None,
    *,
    keyring: Keyring | None = None,
    progress: Progress | None = None,
) -> ApkIndex:
    """Regenerate and sign ``<arch_dir>/APKINDEX.tar.gz`` from the ``.apk`` files present.

    Every package must be readable, be named ``<name>-<version>.apk`` after its ``.PKGINFO``
    and belong to this arch (or be ``noarch``), and pass ``admit_package`` (signed by ``key``
    or a key of ``keyring``).
    ``description`` defaults to the current index's.
    """
    arch_dir = Path(arch_dir)
    if not arch_dir.is_dir():
        raise RepositoryError("no such arch directory", where=str(arch_dir))
    arch = arch_dir.resolve().name
    say = progress or (lambda _message: None)
    with repository_lock(arch_dir.parent):
        for leftover in remove_leftovers([arch_dir]):
            say(f"removed {leftover.name} (left by a crashed publish)")
        packages: list[PackageInfo] = []
        for path in sorted(arch_dir.glob("*.apk")):
            if path.name.startswith("."):
                continue
            say(f"reading {path.name}")
            info = _read_package(path, _index_keyring(key, keyring)).info
            if info.arch not in (arch, NOARCH):
                raise RepositoryError(
                    f"package is for arch {info.arch!r}, not {arch!r}", where=str(path)
                )
            if info.filename != path.name:
                raise RepositoryError(
                    f"file name does not match its .PKGINFO (expected {info.filename})",
                    where=str(path),
                )
            packages.append(info)
        if description is None:
            try:
                old = load_index(arch_dir, None)
            except FormatError:
                old = None  # a broken index is what reindex is for
            description = old.description if old else None
        say(f"signing {arch}/{INDEX_FILE} ({len(packages)} packages)")
        path = _write_arch_index(arch_dir, packages, key, description)
        return read_index(path.read_bytes(), where=str(path), keyring=_index_keyring(key, None))
