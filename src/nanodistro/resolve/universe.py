"""The packages a resolver may choose from: repositories' indexes merged into one lookup.

As apk-tools' database does, the same package (same ``C:`` identity) found in several
repositories is one candidate that remembers every repository holding it; a repository may carry
a tag (``@testing URL``), and tagged packages are only installable when pinned.

Dependency lists are parsed lazily: a resolve touches a few hundred of an index's ten thousands
of packages, and index load time dominates ``nanodistro resolve``.
"""

from __future__ import annotations

import binascii
import contextlib
import functools
import gc
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from nanodistro.errors import VersionError
from nanodistro.formats.pkginfo import PackageInfo
from nanodistro.formats.version import Dependency, parse_dependency


@dataclass(frozen=True)
class RepositoryRef:
    """One configured repository: its URL or folder and optional tag (``@tag URL``).

    ``legacy`` (written ``legacy:URL``) admits packages without a ``datahash``, whose data part
    the signed index does not bind (old Alpine packages); see ``resolve.repositories``.
    """

    url: str
    tag: str | None = None
    legacy: bool = False

    def __str__(self) -> str:
        return f"@{self.tag} {self.url}" if self.tag else self.url


@contextlib.contextmanager
def bulk_allocation() -> Iterator[None]:
    """Pause the cyclic garbage collector while an index's objects are created.

    Loading an index creates some 100,000 containers and none of them is garbage; each of the
    collections they would trigger scans all of them again (a third of the load time). The
    collector's previous state is restored on exit (reference counting frees memory as ever).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@functools.lru_cache(maxsize=65536)
def _dep(atom: str) -> Dependency:
    return parse_dependency(atom, legacy=True)  # Alpine indexes still carry 2.x-only versions


class Candidate:
    """One installable package, possibly present in several repositories."""

    __slots__ = (
        "_depends",
        "_install_if",
        "_provides",
        "broken",
        "info",
        "name",
        "repos",
        "version",
    )

    def __init__(self, info: PackageInfo, repo: int) -> None:
        self.info = info
        # Copied, not properties: the solver reads them tens of thousands of times.
        self.name: str = info.name
        self.version: str = info.version
        self.repos: list[int] = [repo]
        self.broken: str | None = None
        self._depends: tuple[Dependency, ...] | None = None
        self._provides: tuple[Dependency, ...] | None = None
        self._install_if: tuple[Dependency, ...] | None = None
        # The version is validated when the solver first considers the package (usable()).
        if info.extra and any(letter.isupper() for letter, _ in info.extra if len(letter) == 1):
            # apk-tools marks packages with unknown upper-case index fields uninstallable.
            self.broken = "unknown index field"

    @property
    def checksum(self) -> str | None:
        return self.info.checksum

    def __repr__(self) -> str:
        return f"<{self.name}-{self.version}>"

    def _parse(self, atoms: Sequence[str], what: str) -> tuple[Dependency, ...]:
        deps: list[Dependency] = []
        for atom in atoms:
            try:
                dep = _dep(atom)
            except VersionError:
                self.broken = f"invalid {what} {atom!r}"
                continue
            if dep.tag:  # "@tag" is only valid in world (apk_blob_pull_dep)
                self.broken = f"tagged {what} {atom!r}"
                continue
            deps.append(dep)
        return tuple(deps)

    @property
    def depends(self) -> tuple[Dependency, ...]:
        if self._depends is None:
            self._depends = self._parse(self.info.depends, "dependency")
        return self._depends

    @property
    def provides(self) -> tuple[Dependency, ...]:
        if self._provides is None:
            self._provides = self._parse(self.info.provides, "provides")
        return self._provides

    @property
    def install_if(self) -> tuple[Dependency, ...]:
        if self._install_if is None:
            self._install_if = self._parse(self.info.install_if, "install_if")
        return self._install_if

    def claims(self) -> list[tuple[str, str | None]]:
        """Names this package occupies when installed: its own (versioned) and its provides."""
        out: list[tuple[str, str | None]] = [(self.name, self.version)]
        out.extend((p.name, p.version) for p in self.provides)
        return out


def identity_key(checksum: str) -> bytes | str:
    """The digest a ``C:`` identity stands for, as apk-tools keys its package table.

    ``Q1...ysE=`` and ``Q1...ysF=`` differ only in base64 padding bits: the same SHA-1, so the
    same package to apk-tools (the second record is merged into the first).
    """
    if checksum.startswith("Q1"):
        try:  # = base64.b64decode(validate=True), without its wrapper (once per package)
            return binascii.a2b_base64(checksum[2:], strict_mode=True)
        except (binascii.Error, ValueError):
            pass
    return checksum


def _provide_name(atom: str) -> tuple[str, str | None]:
    # Provides are "name" or "name=version"; full parsing waits until the package is considered.
    name, sep, version = atom.partition("=")
    return name, (version if sep else None)


@dataclass
class Universe:
    """Candidates of all repositories for one architecture, indexed by the names they claim."""

    repositories: list[RepositoryRef]
    arch: str | None = None
    candidates: list[Candidate] = field(default_factory=list)
    providers: dict[str, list[tuple[Candidate, str | None]]] = field(default_factory=dict)
    rinstall_if: dict[str, list[Candidate]] = field(default_factory=dict)
    real_names: set[str] = field(default_factory=set)
    _by_identity: dict[bytes | str, Candidate] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        indexes: Iterable[tuple[RepositoryRef, Iterable[PackageInfo]]],
        *,
        arch: str | None = None,
    ) -> Universe:
        universe = cls(repositories=[], arch=arch)
        for repo, packages in indexes:
            universe.add_repository(repo, packages)
        return universe

    def add_repository(self, repo: RepositoryRef, packages: Iterable[PackageInfo]) -> int:
        index = len(self.repositories)
        self.repositories.append(repo)
        providers = self.providers
        for info in packages:
            key = identity_key(info.checksum) if info.checksum else None
            if key is not None:
                known = self._by_identity.get(key)
                if known is not None:
                    if index not in known.repos:
                        known.repos.append(index)
                    continue
            cand = Candidate(info, index)
            if self.arch and info.arch and info.arch not in (self.arch, "noarch"):
                cand.broken = f"arch {info.arch}"
            if key is not None:
                self._by_identity[key] = cand
            self.candidates.append(cand)
            self.real_names.add(info.name)
            providers.setdefault(info.name, []).append((cand, info.version))
            for atom in info.provides:
                name, version = _provide_name(atom)
                providers.setdefault(name, []).append((cand, version))
            if info.install_if:  # parsed now (it can mark the package broken); rarely set
                for dep in cand.install_if:
                    self.rinstall_if.setdefault(dep.name, []).append(cand)
        return index

    def tags_of(self, cand: Candidate) -> set[str | None]:
        return {self.repositories[i].tag for i in cand.repos}

    def repository_of(self, cand: Candidate, tag: str | None = None) -> RepositoryRef:
        """The first repository holding ``cand`` (with ``tag`` if it is in a repo so tagged)."""
        for i in cand.repos:
            if self.repositories[i].tag == tag:
                return self.repositories[i]
        return self.repositories[cand.repos[0]]
