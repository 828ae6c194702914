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
from collections.abc import Callable, Iterable, Iterator, Sequence
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


#: What a universe needs of a package before the solver looks at it (``resolve.index_cache``
#: stores it so a cached index builds only the records the solver touches): name, version,
#: arch, identity key (``identity_key`` of ``C:``), provided (name, version) pairs, install_if
#: parsed (``InstallIf``), build date, whether it has an unknown upper-case field.
Summary = tuple[
    str,
    str,
    str,
    "bytes | str | None",
    tuple[tuple[str, "str | None"], ...],
    "InstallIf | None",
    "int | None",
    bool,
]
#: A package's install_if parsed as ``Candidate`` parses it: each valid atom's Dependency
#: fields (name, op, version, conflict, tag), and why the package is broken if an atom is not.
InstallIf = tuple[tuple[tuple[str, int, "str | None", bool, "str | None"], ...], "str | None"]


def summary(info: PackageInfo) -> Summary:
    return (
        info.name,
        info.version,
        info.arch,
        identity_key(info.checksum) if info.checksum else None,
        tuple(_provide_name(atom) for atom in info.provides),
        _install_if_summary(info.install_if),
        info.builddate,
        unknown_upper_field(info.extra),
    )


def unknown_upper_field(extra: Sequence[tuple[str, str]]) -> bool:
    """apk-tools marks packages with unknown upper-case index fields uninstallable."""
    return bool(extra) and any(letter.isupper() for letter, _ in extra if len(letter) == 1)


@functools.lru_cache(maxsize=65536)
def _dep(atom: str) -> Dependency:
    return parse_dependency(atom, legacy=True)  # Alpine indexes still carry 2.x-only versions


def _parse_atoms(atoms: Sequence[str], what: str) -> tuple[tuple[Dependency, ...], str | None]:
    """The valid atoms, and why the package is broken if some atom is not (the last reason)."""
    deps: list[Dependency] = []
    broken = None
    for atom in atoms:
        try:
            dep = _dep(atom)
        except VersionError:
            broken = f"invalid {what} {atom!r}"
            continue
        if dep.tag:  # "@tag" is only valid in world (apk_blob_pull_dep)
            broken = f"tagged {what} {atom!r}"
            continue
        deps.append(dep)
    return tuple(deps), broken


def _install_if_summary(atoms: Sequence[str]) -> InstallIf | None:
    if not atoms:
        return None
    deps, broken = _parse_atoms(atoms, "install_if")
    return tuple((d.name, d.op, d.version, d.conflict, d.tag) for d in deps), broken


class Candidate:
    """One installable package, possibly present in several repositories."""

    __slots__ = (
        "_depends",
        "_info",
        "_install_if",
        "_load",
        "_number",
        "_provides",
        "broken",
        "name",
        "repos",
        "version",
    )

    def __init__(self, info: PackageInfo | None, repo: int, summary: Summary | None = None) -> None:
        """From the package's record, or (``info`` None) from its ``summary``: then the record
        comes from the loader ``Universe.add_summaries`` sets when first asked for (``info``)."""
        self._info = info
        self._load: Callable[[int], PackageInfo] | None = None
        self._number = 0
        # Copied, not properties: the solver reads them tens of thousands of times.
        if info is not None:
            self.name: str = info.name
            self.version: str = info.version
            unknown_upper = unknown_upper_field(info.extra)
        else:
            assert summary is not None
            self.name, self.version = summary[0], summary[1]
            unknown_upper = summary[7]
        self.repos: list[int] = [repo]
        self.broken: str | None = None
        self._depends: tuple[Dependency, ...] | None = None
        self._provides: tuple[Dependency, ...] | None = None
        self._install_if: tuple[Dependency, ...] | None = None
        # The version is validated when the solver first considers the package (usable()).
        if unknown_upper:
            self.broken = "unknown index field"

    @property
    def info(self) -> PackageInfo:
        info = self._info
        if info is None:
            assert self._load is not None
            info = self._info = self._load(self._number)
            self._load = None
        return info

    @property
    def checksum(self) -> str | None:
        return self.info.checksum

    def __repr__(self) -> str:
        return f"<{self.name}-{self.version}>"

    def _parse(self, atoms: Sequence[str], what: str) -> tuple[Dependency, ...]:
        deps, broken = _parse_atoms(atoms, what)
        if broken is not None:
            self.broken = broken
        return deps

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
        for info in packages:
            key = identity_key(info.checksum) if info.checksum else None
            provided = [_provide_name(atom) for atom in info.provides]
            install_if = _parse_atoms(info.install_if, "install_if") if info.install_if else None
            self._add(index, Candidate(info, index), key, info.arch, provided, install_if)
        return index

    def add_summaries(
        self,
        repo: RepositoryRef,
        summaries: Sequence[Summary],
        load: Callable[[int], PackageInfo],
    ) -> int:
        """Like ``add_repository`` for packages known by their summaries; package ``number``'s
        record is ``load(number)``, asked for only when something reads ``Candidate.info``."""
        index = len(self.repositories)
        self.repositories.append(repo)
        # _add inlined, and each candidate made without __init__ (what ``deferred`` sets): this
        # loop runs once per package of every index, the largest part of a warm resolve after
        # the solve itself. Same candidates, same order, same maps as the _add path.
        new = Candidate.__new__
        by_identity = self._by_identity
        candidates = self.candidates
        real_names = self.real_names
        providers = self.providers
        rinstall_if = self.rinstall_if
        own_arch = self.arch
        made: dict[tuple[str, int, str | None, bool, str | None], Dependency] = {}
        for number, summary in enumerate(summaries):
            name, version, arch, key, provided, install_if, _, unknown_upper = summary
            if key is not None:
                known = by_identity.get(key)
                if known is not None:
                    if index not in known.repos:
                        known.repos.append(index)
                    continue
            cand = new(Candidate)
            cand._info = None
            cand._load = load
            cand._number = number
            cand.name = name
            cand.version = version
            cand.repos = [index]
            cand.broken = "unknown index field" if unknown_upper else None
            cand._depends = None
            cand._provides = None
            cand._install_if = None
            if own_arch and arch and arch != own_arch and arch != "noarch":
                cand.broken = f"arch {arch}"
            if key is not None:
                by_identity[key] = cand
            candidates.append(cand)
            real_names.add(name)
            entry = providers.get(name)
            if entry is None:
                providers[name] = [(cand, version)]
            else:
                entry.append((cand, version))
            for provided_name, provided_version in provided:
                entry = providers.get(provided_name)
                if entry is None:
                    providers[provided_name] = [(cand, provided_version)]
                else:
                    entry.append((cand, provided_version))
            if install_if is not None:  # parsed now: it can mark the package broken
                fields, broken = install_if
                deps = []
                for item in fields:
                    dep = made.get(item)
                    if dep is None:
                        dep = made[item] = Dependency(*item)
                    deps.append(dep)
                cand._install_if = tuple(deps)
                if broken is not None:
                    cand.broken = broken
                for dep in deps:
                    waiting = rinstall_if.get(dep.name)
                    if waiting is None:
                        rinstall_if[dep.name] = [cand]
                    else:
                        waiting.append(cand)
        return index

    def _add(
        self,
        index: int,
        cand: Candidate,
        key: bytes | str | None,
        arch: str,
        provided: Sequence[tuple[str, str | None]],
        install_if: tuple[tuple[Dependency, ...], str | None] | None,
    ) -> None:
        if key is not None:
            known = self._by_identity.get(key)
            if known is not None:
                if index not in known.repos:
                    known.repos.append(index)
                return
        if self.arch and arch and arch not in (self.arch, "noarch"):
            cand.broken = f"arch {arch}"
        if key is not None:
            self._by_identity[key] = cand
        self.candidates.append(cand)
        self.real_names.add(cand.name)
        providers = self.providers
        providers.setdefault(cand.name, []).append((cand, cand.version))
        for name, version in provided:
            providers.setdefault(name, []).append((cand, version))
        if install_if is not None:  # parsed now: it can mark the package broken
            cand._install_if, broken = install_if
            if broken is not None:
                cand.broken = broken
            for dep in cand._install_if:
                self.rinstall_if.setdefault(dep.name, []).append(cand)

    def tags_of(self, cand: Candidate) -> set[str | None]:
        return {self.repositories[i].tag for i in cand.repos}

    def repository_of(self, cand: Candidate, tag: str | None = None) -> RepositoryRef:
        """The first repository holding ``cand`` (with ``tag`` if it is in a repo so tagged)."""
        for i in cand.repos:
            if self.repositories[i].tag == tag:
                return self.repositories[i]
        return self.repositories[cand.repos[0]]
