"""Assemble a sandbox root from packages: ``environment.contents.packages`` and test packages.

Names the toolchain stands in for (``runners.Toolchain.provides``; libc sonames, commands,
libraries and ``.pc`` files the toolchain root has) are satisfied by the read-only toolchain
mount. Everything else is resolved with the resolver (``nanodistro.resolve``) against the
configured repositories — indexes signature-checked against the keyring, packages checked
against their index identity (DESIGN.md invariant 5) — plus the packages just built, and the
closure is extracted into the root with the path-safety checks of ``formats.tarball.extract``.

To let the solver see the toolchain, a synthetic package ``nanodistro-toolchain`` that provides
every toolchain-satisfied name the universe refers to is added to the universe and to the world;
it is never installed.

Test roots are a closed world (DESIGN.md invariant 6): ``PackageSources.toolchain_only`` limits
the toolchain to the names the test environment declares (plus its C library's sonames when there
are any), so nothing is satisfied from the host's /usr merely because a file is there. Packages
just built shadow every repository package of the same name: for a just-built name the resolver
can pick only the just-built package, and when that cannot be installed the error names what the
repository would have substituted (``ResolveError``), never silently the older package.
"""

from __future__ import annotations

import glob
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nanodistro.builder.runners import Toolchain
from nanodistro.errors import ResolveError, VersionError
from nanodistro.formats.apk import read_apk
from nanodistro.formats.pkginfo import PackageInfo
from nanodistro.formats.signature import Keyring
from nanodistro.formats.tarball import extract
from nanodistro.formats.version import parse_dependency
from nanodistro.resolve import RepositoryClient, RepositoryRef, Universe, solve
from nanodistro.resolve.repositories import index_location, is_remote
from nanodistro.resolve.universe import Candidate

TOOLCHAIN_PACKAGE = "nanodistro-toolchain"
BUILT_REPOSITORY = RepositoryRef("<packages just built>")
TOOLCHAIN_REPOSITORY = RepositoryRef("<toolchain>")

_LIB_GLOBS = ("usr/lib/*-linux-gnu", "usr/lib", "lib/*-linux-gnu", "usr/lib64", "usr/local/lib")
_PC_GLOBS = ("usr/lib/*-linux-gnu/pkgconfig", "usr/lib/pkgconfig", "usr/share/pkgconfig")


def split_atom(atom: str) -> str:
    """The name part of a dependency atom (``so:libz.so.1>=1`` -> ``so:libz.so.1``)."""
    try:
        return parse_dependency(atom).name
    except VersionError:
        for op in ("<=", ">=", "><", "~", "=", "<", ">"):
            if op in atom:
                return atom.split(op, 1)[0].lstrip("!")
        return atom.lstrip("!")


@dataclass
class ToolchainIndex:
    """What the read-only toolchain root satisfies."""

    toolchain: Toolchain
    # closed world (tests): only these names, see PackageSources.toolchain_only
    only: frozenset[str] | None = None
    _cache: dict[str, bool] = field(default_factory=dict)

    def configured(self, name: str) -> bool:
        """A package name the toolchain is configured to stand in for (always wins)."""
        if self.only is not None:
            return name in self.only
        return name in self.toolchain.provides

    def satisfies(self, atom: str) -> bool:
        name = split_atom(atom)
        if name not in self._cache:
            self._cache[name] = self._lookup(name)
        return self._cache[name]

    def _lookup(self, name: str) -> bool:
        tc = self.toolchain
        host = tc.host_root
        if self.only is not None:
            # No look at the host's files: a declared name, or the C library that comes with a
            # toolchain mounted for one (configured sonames, not found on disk).
            kind, _, value = name.partition(":")
            return name in self.only or (
                bool(self.only) and kind == "so" and value in tc.libc_sonames
            )
        if name in tc.provides:
            return True
        kind, sep, value = name.partition(":")
        if not sep:
            if name.startswith("python-3") and name.endswith("-base"):
                version = name[len("python-") : -len("-base")]
                return (host / f"usr/bin/python{version}").exists()
            return False
        if kind == "so":
            if value in tc.libc_sonames:
                return True
            return any(glob.glob(str(host / pattern / value)) for pattern in _LIB_GLOBS)
        if kind == "cmd":
            return any((host / d / value).exists() for d in ("usr/bin", "usr/sbin", "bin", "sbin"))
        if kind == "pc":
            return any(glob.glob(str(host / pattern / f"{value}.pc")) for pattern in _PC_GLOBS)
        return False


@dataclass
class PackageSources:
    """Where environment packages may come from."""

    arch: str
    repositories: list[RepositoryRef] = field(default_factory=list)
    keyring: Keyring = field(default_factory=dict)
    built: Sequence[bytes] = ()  # .apk bytes of packages built in this run (not yet published)
    toolchain: Toolchain = field(default_factory=Toolchain)
    # Tests: the toolchain stands in for exactly these declared names (None: builds, where the
    # toolchain root satisfies whatever so:/cmd:/pc: names it has).
    toolchain_only: frozenset[str] | None = None
    allow_downgrade: bool = False  # accept an older repository index (resolve.replay)


@dataclass
class Environment:
    """A loaded universe plus how to fetch its packages."""

    universe: Universe
    client: RepositoryClient
    built: dict[str, bytes]  # identity -> bytes
    toolchain: ToolchainIndex
    arch: str
    # repository candidates hidden by a just-built package of the same name, with what made
    # them uninstallable before (restored to explain a failed resolve)
    shadowed: list[tuple[Candidate, str | None]] = field(default_factory=list)
    built_infos: dict[str, PackageInfo] = field(default_factory=dict)  # name -> just built

    def provided(self, atom: str) -> bool:
        name = split_atom(atom)
        return name in self.universe.providers or self.toolchain.satisfies(name)

    def close(self) -> None:
        self.client.close()


def _usable(repo: RepositoryRef, arch: str) -> bool:
    # A local repository without an index yet (the first publish has not happened) is empty.
    if is_remote(repo.url):
        return True
    return Path(index_location(repo, arch).removeprefix("file://")).is_file()


def load_environment(sources: PackageSources) -> Environment:
    """Read every repository's verified index and the just-built packages into one universe."""
    client = RepositoryClient(sources.keyring, allow_downgrade=sources.allow_downgrade)
    try:
        usable = [r for r in sources.repositories if _usable(r, sources.arch)]
        universe = client.load_universe(usable, sources.arch)
    except BaseException:
        client.close()
        raise
    built: dict[str, bytes] = {}
    infos: list[PackageInfo] = []
    for data in sources.built:
        pkg = read_apk(data, where="built package")
        info = pkg.info.copy()
        info.checksum = pkg.identity
        info.file_size = len(data)
        built[pkg.identity] = data
        infos.append(info)
    shadowed: list[tuple[Candidate, str | None]] = []
    if infos:
        universe.add_repository(BUILT_REPOSITORY, infos)
        own = {info.name: info for info in infos}
        for candidate in universe.candidates:
            mine = own.get(candidate.info.name)
            if mine is not None and candidate.checksum != mine.checksum:
                shadowed.append((candidate, candidate.broken))
                candidate.broken = f"shadowed by the just-built {mine.name}-{mine.version}"
    return Environment(
        universe,
        client,
        built,
        ToolchainIndex(sources.toolchain, sources.toolchain_only),
        sources.arch,
        shadowed,
        {info.name: info for info in infos},
    )


def _toolchain_package(env: Environment, world: Iterable[str]) -> PackageInfo:
    wanted: set[str] = set(world)
    for candidate in env.universe.candidates:
        wanted.update(split_atom(d) for d in candidate.info.depends if not d.startswith("!"))
    provided = sorted(
        name
        for name in wanted
        if env.toolchain.configured(name)
        or (name not in env.universe.providers and env.toolchain.satisfies(name))
    )
    return PackageInfo(
        name=TOOLCHAIN_PACKAGE,
        version="0-r0",
        arch="noarch",
        provides=provided,
        description="names satisfied by the read-only toolchain root",
    )


def resolve_environment(env: Environment, names: Sequence[str]) -> list[PackageInfo]:
    """The packages to install for ``names`` (install order, toolchain names left out).

    Every package of a just-built name in the result is the just-built one (same checksum);
    otherwise, or when the just-built packages cannot be installed, a ``ResolveError`` names
    the just-built version and what the repository would have given instead.
    """
    world = [n for n in names if not env.toolchain.configured(split_atom(n))]
    toolchain = _toolchain_package(env, [split_atom(n) for n in world])
    env.universe.add_repository(TOOLCHAIN_REPOSITORY, [toolchain])
    try:
        resolution = solve(env.universe, [*world, TOOLCHAIN_PACKAGE])
    except ResolveError as error:
        substituted = _substitution_error(env, [*world, TOOLCHAIN_PACKAGE], error)
        if substituted is not None:
            raise substituted from None
        if env.toolchain.only is not None:
            raise ResolveError(
                f"cannot assemble the test environment from the repositories and the packages "
                f"just built: {error.message} (the host toolchain stands in only for toolchain "
                "names the test's environment.contents.packages declares)"
            ) from None
        raise ResolveError(
            f"cannot assemble the build environment: {error.message} (names the toolchain "
            "stands in for are configured in Toolchain.provides)"
        ) from None
    packages = [p for p in resolution.packages if p.candidate.info.name != TOOLCHAIN_PACKAGE]
    for resolved in packages:
        mine = env.built_infos.get(resolved.name)
        if mine is not None and resolved.checksum != mine.checksum:
            raise ResolveError(
                f"{resolved.name}: the resolver picked {resolved.version} from "
                f"{resolved.repository} instead of the just-built {mine.version} "
                f"(checksum {resolved.checksum} is not the just-built {mine.checksum})"
            )
    return [p.candidate.info for p in packages]


def _substitution_error(
    env: Environment, world: Sequence[str], error: ResolveError
) -> ResolveError | None:
    """If the world resolves once the shadowed repository packages are back, the error naming
    each just-built package the repository would have replaced, and why it could not be used."""
    if not env.shadowed:
        return None
    hidden = [(candidate, candidate.broken) for candidate, _ in env.shadowed]
    for candidate, before in env.shadowed:
        candidate.broken = before
    try:
        # the pin on a just-built version is what failed: ask for the names alone
        loose = [split_atom(n) if split_atom(n) in env.built_infos else n for n in world]
        resolution = solve(env.universe, loose)
    except ResolveError:
        return None
    finally:
        for candidate, broken in hidden:
            candidate.broken = broken
    reasons = []
    for resolved in resolution.packages:
        mine = env.built_infos.get(resolved.name)
        if mine is None or resolved.checksum == mine.checksum:
            continue
        missing = missing_names(env, mine)
        why = "; ".join(f"{n} has no provider" for n in missing) or error.message
        reasons.append(
            f"{mine.name}: the resolver picked {resolved.version} from {resolved.repository} "
            f"instead of the just-built {mine.version} ({why})"
        )
    return ResolveError("; ".join(reasons)) if reasons else None


def missing_names(env: Environment, info: PackageInfo) -> list[str]:
    """Dependency names, direct or through other packages, that nothing installable provides
    (shadowed repository packages do not count), in the order found."""
    missing: list[str] = []
    seen: set[str] = set()
    todo = [info]
    while todo:
        current = todo.pop(0)
        for atom in current.depends:
            if atom.startswith("!"):
                continue
            name = split_atom(atom)
            if name in seen:
                continue
            seen.add(name)
            providers = [c for c, _ in env.universe.providers.get(name, ()) if c.broken is None]
            if not providers and not env.toolchain.satisfies(name):
                missing.append(name)
            elif providers:
                todo.append(providers[0].info)
    return missing


@dataclass(frozen=True)
class InstalledPackage:
    """One package installed into a root, as provenance names it: identity and file digest."""

    name: str
    version: str
    checksum: str  # Q1 identity (the index C:)
    sha256: str  # of the .apk bytes installed
    repository: str  # URL or folder it came from (BUILT_REPOSITORY for just-built ones)
    filename: str


def install(
    env: Environment,
    packages: Iterable[PackageInfo],
    root: Path,
    record: list[InstalledPackage] | None = None,
) -> list[str]:
    """Fetch (verified) and extract each package into ``root``; returns ``name-version``s.
    ``record`` receives each package's identity and digest (for provenance)."""
    installed: list[str] = []
    repo_of = {id(c.info): env.universe.repository_of(c) for c in env.universe.candidates}
    for info in packages:
        where = info.filename
        data = env.built.get(info.checksum or "")
        repository = BUILT_REPOSITORY.url
        if data is None:
            ref = repo_of[id(info)]
            repository = ref.url
            data = env.client.fetch_package(ref, env.arch, info)
        pkg = read_apk(data, where=where)
        extract(pkg.entries, root, where=where)
        installed.append(f"{info.name}-{info.version}")
        if record is not None:
            record.append(
                InstalledPackage(
                    info.name,
                    info.version,
                    pkg.identity,
                    hashlib.sha256(data).hexdigest(),
                    repository,
                    info.filename,
                )
            )
    return installed


def assemble_root(
    names: Sequence[str],
    root: Path,
    sources: PackageSources,
    record: list[InstalledPackage] | None = None,
) -> list[str]:
    """Resolve ``names`` and install the closure into ``root`` (``record``: see ``install``)."""
    env = load_environment(sources)
    try:
        return install(env, resolve_environment(env, names), root, record)
    finally:
        env.close()
