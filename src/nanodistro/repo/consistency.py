"""Repository consistency: every dependency of every package has a provider (DESIGN invariant 6).

``apk index`` warns "No provider for the dependencies: ..." for each dependency *name* that no
package in the index (or the repositories it was given) provides, and ends with "Your repository
may be broken" (apk-tools 2.14/3.0 ``src/app_index.c`` ``warn_if_no_providers``; conflicts
``!name`` do not count, ``name->is_dependency |= !conflict`` in ``database.c``). nanodistro
refuses to publish such an index, and checks versions too: ``so:libz.so.1>=1.2`` needs a provider
whose version matches, as the resolver would (``resolve.universe`` provider table +
``formats.version.Dependency.matches_version``; an unversioned provide satisfies only unversioned
atoms, a ``><Q1…`` atom only that package identity).

The packages checked are those of one arch directory after the publish (existing index entries,
replaced by new packages of the same name and version); their providers may also come from the
configured upstream repositories (``BuildConfig.extra_repos``, ``repo check --repository``).
Where a missing dependency came from (SCA origins such as ``usr/bin/xzdiff (shebang)``) and
whether the build host's toolchain has that name are explanations only: the toolchain root is not
part of any image, so it never counts as a provider.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nanodistro.errors import ConsistencyError, RepositoryError
from nanodistro.formats.pkginfo import PackageInfo
from nanodistro.formats.signature import Keyring
from nanodistro.formats.version import Dependency

# the resolver's own rule for "does this provider match the atom" (versions, identities)
from nanodistro.resolve.provides import provides
from nanodistro.resolve.repositories import RepositoryClient, index_location, is_remote
from nanodistro.resolve.universe import RepositoryRef, Universe

__all__ = [
    "ConsistencyReport",
    "MissingDependency",
    "Upstream",
    "check_consistency",
    "check_packages",
    "check_repository",
    "load_upstream",
    "package_key",
    "repository_archs",
]

#: The repository being checked, in the provider table.
CHECKED_REPOSITORY = RepositoryRef("<repository>")
#: Upstream repositories already loaded for one arch: (repository, its verified index records).
Upstream = Sequence[tuple[RepositoryRef, Iterable[PackageInfo]]]
#: Whether the build host's toolchain root has a name (``ToolchainIndex.satisfies``).
HostProvides = Callable[[str], bool]

INDEX_NAME = "APKINDEX.tar.gz"
HOST_NOTE = "provided on the build host by the toolchain root, not by any package"


def package_key(info: PackageInfo) -> str:
    """``name-version``, the key of ``origins`` and of messages."""
    return f"{info.name}-{info.version}"


@dataclass(frozen=True)
class MissingDependency:
    """One dependency of one package that nothing provides."""

    package: str  # name-version
    dependency: str  # the atom as written in the package (``so:libz.so.1>=1.2``)
    name: str
    origins: tuple[str, ...] = ()  # where SCA found it (``usr/bin/xzdiff (shebang)``)
    candidates: tuple[str, ...] = ()  # providers whose version does not match (``name=1.1``)
    on_host: bool = False  # the build host's toolchain has it
    problem: str = "has no provider"

    def __str__(self) -> str:
        text = f"{self.package}: {self.dependency} {self.problem}"
        if self.candidates:
            text += f" (only {', '.join(self.candidates)})"
        if self.origins:
            text += f" (← {', '.join(self.origins)})"
        if self.on_host:
            text += f"; {HOST_NOTE}"
        return text

    def to_json(self) -> dict[str, object]:
        return {
            "package": self.package,
            "dependency": self.dependency,
            "name": self.name,
            "problem": self.problem,
            "origins": list(self.origins),
            "candidates": list(self.candidates),
            "on_host": self.on_host,
        }


@dataclass
class ConsistencyReport:
    """The result for one arch: what is missing and what ``apk index`` would warn about."""

    arch: str
    packages: int = 0
    missing: list[MissingDependency] = field(default_factory=list)
    #: dependency names no package provides at all (``apk index``'s warning list)
    unprovided_names: list[str] = field(default_factory=list)
    #: problems the repository had before a publish (tolerated by it, see check_consistency)
    preexisting: list[MissingDependency] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing

    def apk_index_warnings(self) -> list[str]:
        """The lines ``apk index`` prints for this index (apk-tools ``app_index.c``)."""
        if not self.unprovided_names:
            return []
        count = len(self.unprovided_names)
        return [
            "WARNING: No provider for the dependencies: " + " ".join(self.unprovided_names),
            f"WARNING: Total of {count} unsatisfiable package names. "
            "Your repository may be broken.",
        ]

    def to_json(self) -> dict[str, object]:
        return {
            "arch": self.arch,
            "packages": self.packages,
            "consistent": self.ok,
            "missing": [m.to_json() for m in self.missing],
            "apk_index_warnings": self.apk_index_warnings(),
        }


def _origins_of(
    origins: Mapping[str, Sequence[str]], dep: Dependency, atom: str
) -> tuple[str, ...]:
    found = origins.get(atom) or origins.get(dep.name) or ()
    return tuple(found)


def check_packages(
    packages: Iterable[PackageInfo],
    *,
    arch: str,
    upstream: Upstream = (),
    origins: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
    host_provides: HostProvides | None = None,
) -> ConsistencyReport:
    """Check that every dependency of ``packages`` (one arch's index) has a provider among them
    or in ``upstream``. ``origins``: ``name-version`` -> dependency name -> where SCA found it."""
    universe = Universe(repositories=[], arch=arch)
    universe.add_repository(CHECKED_REPOSITORY, packages)
    checked = list(universe.candidates)
    for ref, infos in upstream:
        universe.add_repository(ref, infos)
    origins = origins or {}
    report = ConsistencyReport(arch=arch, packages=len(checked))
    unprovided: set[str] = set()
    for cand in sorted(checked, key=lambda c: (c.name, c.version)):
        key = f"{cand.name}-{cand.version}"
        where = origins.get(key, {})
        depends = cand.depends  # parsing marks a package broken on an invalid atom
        atoms = [a for a in cand.info.depends if not a.startswith("!")]
        if cand.broken and cand.broken.startswith(("invalid dependency", "tagged dependency")):
            report.missing.append(
                MissingDependency(key, cand.broken, cand.broken, problem="cannot be parsed")
            )
        for dep in depends:
            if dep.conflict:
                continue  # "!name" needs nothing (apk: is_dependency |= !conflict)
            atom = next((a for a in atoms if a == str(dep)), str(dep))
            providers = universe.providers.get(dep.name, [])
            if any(provides(dep, c, ver) for c, ver in providers):
                continue
            if not providers:
                unprovided.add(dep.name)
            report.missing.append(
                MissingDependency(
                    package=key,
                    dependency=atom,
                    name=dep.name,
                    origins=_origins_of(where, dep, atom),
                    candidates=tuple(
                        sorted({f"{dep.name}={ver}" if ver else dep.name for _, ver in providers})
                    ),
                    on_host=bool(host_provides and host_provides(dep.name)),
                    problem="has no matching provider" if providers else "has no provider",
                )
            )
    report.unprovided_names = sorted(unprovided)
    return report


def check_consistency(
    indexes: Mapping[str, Iterable[PackageInfo]],
    *,
    where: str,
    upstream: Callable[[str], Upstream] | None = None,
    origins: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
    host_provides: HostProvides | None = None,
    baseline: Mapping[str, Iterable[PackageInfo]] | None = None,
) -> list[ConsistencyReport]:
    """Check each arch's resulting index (``indexes``: arch -> packages); raise
    :class:`ConsistencyError` listing every missing dependency, before anything is written.

    ``baseline`` (arch -> the index before the publish): a problem the repository already had
    is not the publish's doing and does not block it — refusing every publish into a repository
    that was broken before (say, by an older nanodistro's packages) would only stop its repair;
    such problems stay in ``ConsistencyReport.preexisting`` for the caller to report, and
    ``repo check`` still fails on them. Everything the publish adds or breaks is refused."""
    reports = []
    for arch, packages in sorted(indexes.items()):
        arch_upstream = upstream(arch) if upstream else ()
        report = check_packages(
            packages,
            arch=arch,
            upstream=arch_upstream,
            origins=origins,
            host_provides=host_provides,
        )
        if baseline is not None and arch in baseline:
            before = check_packages(baseline[arch], arch=arch, upstream=arch_upstream)
            known = {(m.package, m.dependency) for m in before.missing}
            report.preexisting = [m for m in report.missing if (m.package, m.dependency) in known]
            report.missing = [m for m in report.missing if (m.package, m.dependency) not in known]
        reports.append(report)
    missing = [(r.arch, m) for r in reports for m in r.missing]
    if missing:
        listed = "; ".join(f"{arch}: {m}" for arch, m in missing)
        raise ConsistencyError(
            f"refusing to publish: {len(missing)} dependenc{'y' if len(missing) == 1 else 'ies'} "
            f"would have no provider in the repository or its upstream repositories: {listed}",
            where=where,
            missing=[m for _, m in missing],
        )
    return reports


def load_upstream(
    repositories: Sequence[RepositoryRef], keyring: Keyring
) -> Callable[[str], Upstream]:
    """A loader of the upstream repositories' verified indexes per arch (cached). A local
    repository without an index for the arch is empty; a remote one must answer."""
    cache: dict[str, Upstream] = {}

    def load(arch: str) -> Upstream:
        if arch not in cache:
            loaded: list[tuple[RepositoryRef, Iterable[PackageInfo]]] = []
            with RepositoryClient(keyring) as client:
                for ref in repositories:
                    location = index_location(ref, arch)
                    if (
                        not is_remote(ref.url)
                        and not Path(location.removeprefix("file://")).is_file()
                    ):
                        continue
                    loaded.append((ref, client.fetch_index(ref, arch).packages))
            cache[arch] = loaded
        return cache[arch]

    return load


def repository_archs(repo: Path) -> list[str]:
    """Arch directories of ``repo`` that hold an index."""
    if not repo.is_dir():
        raise RepositoryError("no such repository directory", where=str(repo))
    return sorted(
        p.name
        for p in repo.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (p / INDEX_NAME).is_file()
    )


def check_repository(
    repo: Path,
    keyring: Keyring,
    *,
    archs: Sequence[str] = (),
    upstream: Callable[[str], Upstream] | None = None,
    host_provides: HostProvides | None = None,
) -> list[ConsistencyReport]:
    """Check each arch index of ``repo`` (signature-verified against ``keyring``); no raise for
    missing providers — the reports say what is missing."""
    from nanodistro.repo.repository import load_index

    repo = Path(repo)
    chosen = list(archs) or repository_archs(repo)
    if not chosen:
        raise RepositoryError("no ARCH/APKINDEX.tar.gz in the repository", where=str(repo))
    reports = []
    for arch in chosen:
        index = load_index(repo / arch, keyring)
        if index is None:
            raise RepositoryError("no index for this arch", where=str(repo / arch / INDEX_NAME))
        reports.append(
            check_packages(
                index.packages,
                arch=arch,
                upstream=upstream(arch) if upstream else (),
                host_provides=host_provides,
            )
        )
    return reports
