"""Where image packages come from: signed repositories, a dependency closure, package bytes.

Uses ``nanodistro.resolve`` when it provides a solver; until then (and as a small, predictable
fallback) a greedy solver picks, for each needed name, the highest version any repository offers
that satisfies the constraint, follows ``D:`` (including ``so:``/``cmd:`` provides) and returns
dependencies before dependants (apk installs in that order).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from nanodistro.errors import FetchError, ResolveError
from nanodistro.formats.apkindex import read_index
from nanodistro.formats.pkginfo import PackageInfo
from nanodistro.formats.version import Dependency, compare, parse_dependency

Progress = Callable[[str], None]


@dataclass
class Repository:
    """One repository root (``<url>/<arch>/APKINDEX.tar.gz``), optionally ``@tag``-ged."""

    url: str
    arch: str
    tag: str | None = None
    packages: list[PackageInfo] = field(default_factory=list)

    @property
    def index_url(self) -> str:
        return f"{self.url.rstrip('/')}/{self.arch}/APKINDEX.tar.gz"

    def package_url(self, info: PackageInfo) -> str:
        return f"{self.url.rstrip('/')}/{self.arch}/{info.filename}"


def split_repository(entry: str) -> tuple[str | None, str]:
    """``"@tag url"`` -> (tag, url); ``"url"`` -> (None, url)."""
    text = entry.strip()
    if text.startswith("@"):
        tag, _, url = text.partition(" ")
        return tag[1:], url.strip()
    return None, text


def _is_remote(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def read_location(url: str, *, client: httpx.Client | None = None) -> bytes:
    """Bytes of a local path, ``file://`` URL or http(s) URL."""
    if _is_remote(url):
        try:
            if client is not None:
                response = client.get(url)
            else:
                response = httpx.get(url, timeout=60.0, follow_redirects=True)
        except httpx.HTTPError as error:
            raise FetchError(f"cannot fetch: {error}", where=url) from None
        if response.status_code != 200:
            raise FetchError(f"HTTP {response.status_code}", where=url)
        return response.content
    path = Path(urllib.parse.urlparse(url).path if url.startswith("file://") else url)
    try:
        return path.read_bytes()
    except OSError as error:
        raise FetchError(f"cannot read: {error.strerror}", where=str(path)) from None


def load_repositories(
    entries: Iterable[str],
    arch: str,
    keyring: Mapping[str, bytes],
    *,
    progress: Progress | None = None,
) -> list[Repository]:
    """Fetch and signature-check each repository's index for ``arch`` (DESIGN invariant 5)."""
    repos: list[Repository] = []
    for entry in entries:
        tag, url = split_repository(entry)
        repo = Repository(url=url, arch=arch, tag=tag)
        if progress:
            progress(f"index {repo.index_url}")
        data = read_location(repo.index_url)
        repo.packages = read_index(data, where=repo.index_url, keyring=keyring).packages
        repos.append(repo)
    return repos


@dataclass
class Candidate:
    info: PackageInfo
    repo: Repository


class _Catalog:
    def __init__(self, repos: list[Repository]) -> None:
        self.by_name: dict[str, list[Candidate]] = {}
        self.by_provide: dict[str, list[tuple[Candidate, str | None]]] = {}
        for repo in repos:
            for info in repo.packages:
                candidate = Candidate(info, repo)
                self.by_name.setdefault(info.name, []).append(candidate)
                for provide in info.provides:
                    name, _, version = provide.partition("=")
                    self.by_provide.setdefault(name, []).append((candidate, version or None))

    def candidates(self, dep: Dependency) -> list[Candidate]:
        found: list[tuple[int, Candidate]] = []
        for candidate in self.by_name.get(dep.name, []):
            if dep.tag is None and candidate.repo.tag is not None:
                continue
            if dep.tag is not None and candidate.repo.tag != dep.tag:
                continue
            if dep.matches_version(candidate.info.version, candidate.info.checksum):
                found.append((0, candidate))
        for candidate, version in self.by_provide.get(dep.name, []):
            if dep.tag is None and candidate.repo.tag is not None:
                continue
            if dep.version is not None and version is None:
                continue
            if version is None or dep.matches_version(version):
                priority = -(candidate.info.provider_priority or 0)
                found.append((1 + priority, candidate))

        def key(item: tuple[int, Candidate]) -> tuple[int, str]:
            return item[0], item[1].info.name

        # Prefer real names, then provider priority; within a name the highest version wins.
        best: dict[str, tuple[int, Candidate]] = {}
        for rank, candidate in sorted(found, key=key):
            name = candidate.info.name
            if name not in best or compare(candidate.info.version, best[name][1].info.version) > 0:
                best[name] = (rank, candidate)
        return [c for _, c in sorted(best.values(), key=key)]


def solve(repos: list[Repository], atoms: Iterable[str]) -> list[Candidate]:
    """The install closure of ``atoms`` in install order (dependencies first)."""
    catalog = _Catalog(repos)
    chosen: dict[str, Candidate] = {}
    provided: dict[str, str] = {}  # provided name -> package name
    order: list[str] = []
    visiting: set[str] = set()
    conflicts = [parse_dependency(a[1:]) for a in atoms if a.startswith("!")]

    def satisfied(dep: Dependency) -> str | None:
        if dep.name in chosen and dep.matches_version(chosen[dep.name].info.version):
            return dep.name
        return provided.get(dep.name) if dep.version is None else None

    def visit(dep: Dependency, chain: list[str]) -> None:
        if dep.conflict:
            return
        if satisfied(dep):
            return
        candidates = [
            c
            for c in catalog.candidates(dep)
            if not any(
                x.name == c.info.name and x.matches_version(c.info.version) for x in conflicts
            )
        ]
        if not candidates:
            path = " -> ".join([*chain, str(dep)])
            raise ResolveError(f"nothing provides {dep} (required by {path})")
        candidate = candidates[0]
        name = candidate.info.name
        if name in chosen:
            other = chosen[name].info.version
            raise ResolveError(
                f"{dep} needs {name}-{candidate.info.version} but {name}-{other} is already chosen "
                f"(required by {' -> '.join(chain) or 'world'})"
            )
        if name in visiting:
            return  # dependency cycle: apk installs cycle members in discovery order
        visiting.add(name)
        chosen[name] = candidate
        for provide in candidate.info.provides:
            provided.setdefault(provide.partition("=")[0], name)
        for text in candidate.info.depends:
            visit(parse_dependency(text, where=name), [*chain, f"{name}-{candidate.info.version}"])
        visiting.discard(name)
        order.append(name)

    for atom in atoms:
        visit(parse_dependency(atom, where="world"), [])
    return [chosen[name] for name in order]


def fetch_package(candidate: Candidate, *, cache_dir: Path | None = None) -> bytes:
    """Package bytes from its repository (or a local cache keyed by identity)."""
    cached = None
    if cache_dir is not None and candidate.info.checksum:
        safe = candidate.info.checksum.replace("/", "_").replace("+", "-")
        cached = cache_dir / f"{candidate.info.name}-{candidate.info.version}.{safe}.apk"
        if cached.is_file():
            return cached.read_bytes()
    data = read_location(candidate.repo.package_url(candidate.info))
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_bytes(data)
    return data
