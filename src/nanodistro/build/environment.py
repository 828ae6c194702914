"""Assemble a sandbox root from packages: ``environment.contents.packages`` and test packages.

Names the toolchain stands in for (runners.Toolchain.provides, libc sonames, commands and
libraries the toolchain root has) are satisfied by the read-only toolchain mount; every other
name is looked up among the packages just built and the packages of the configured local
repositories (signature-checked against the keyring when one is given, DESIGN.md invariant 5),
its runtime dependencies followed, and the closure extracted into the root with the path-safety
checks of ``formats.tarball.extract``.
"""

from __future__ import annotations

import glob
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from nanodistro.build.runners import Toolchain
from nanodistro.errors import NanodistroError, ResolveError
from nanodistro.formats.apk import read_apk, verify_apk
from nanodistro.formats.pkginfo import PackageInfo
from nanodistro.formats.signature import Keyring
from nanodistro.formats.tarball import extract
from nanodistro.formats.version import compare

_LIB_GLOBS = ("usr/lib/*-linux-gnu", "usr/lib", "lib/*-linux-gnu", "usr/lib64", "usr/local/lib")
_PC_GLOBS = ("usr/lib/*-linux-gnu/pkgconfig", "usr/lib/pkgconfig", "usr/share/pkgconfig")


def split_atom(atom: str) -> str:
    """The name part of a dependency atom (``so:libz.so.1=1`` -> ``so:libz.so.1``)."""
    for op in ("<=", ">=", "><", "~", "=", "<", ">"):
        if op in atom:
            return atom.split(op, 1)[0]
    return atom


@dataclass
class ToolchainIndex:
    """What the toolchain root provides beyond its configured package names."""

    toolchain: Toolchain
    _cache: dict[str, bool] = field(default_factory=dict)

    def satisfies(self, atom: str) -> bool:
        name = split_atom(atom.lstrip("!"))
        if name in self._cache:
            return self._cache[name]
        found = self._lookup(name)
        self._cache[name] = found
        return found

    def _lookup(self, name: str) -> bool:
        tc = self.toolchain
        host = tc.host_root
        if name in tc.provides:
            return True
        kind, sep, value = name.partition(":")
        if not sep:
            if name.startswith("python-3") and name.endswith("-base"):
                return (host / f"usr/bin/python{name[len('python-') : -len('-base')]}").exists()
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
class AvailablePackage:
    info: PackageInfo
    load: Callable[[], bytes]
    where: str


class PackagePool:
    """Packages an environment may be assembled from, looked up by name or provides."""

    def __init__(self) -> None:
        self._by_name: dict[str, list[AvailablePackage]] = {}

    def add(self, info: PackageInfo, load: Callable[[], bytes], where: str) -> None:
        entry = AvailablePackage(info, load, where)
        self._by_name.setdefault(info.name, []).append(entry)
        for provide in info.provides:
            self._by_name.setdefault(split_atom(provide), []).append(entry)

    def add_bytes(self, data: bytes, where: str) -> None:
        pkg = read_apk(data, where=where)
        self.add(pkg.info, lambda: data, where)

    def add_repository(self, arch_dir: Path, keyring: Keyring | None = None) -> None:
        """Every ``*.apk`` of a local repository arch directory (signature-checked if keyring)."""
        if not arch_dir.is_dir():
            return
        for path in sorted(arch_dir.glob("*.apk")):
            data = path.read_bytes()
            pkg = read_apk(data, where=str(path))
            if keyring:
                verify_apk(pkg, keyring)
            self.add(pkg.info, _reader(path), str(path))

    def best(self, name: str) -> AvailablePackage | None:
        candidates = self._by_name.get(name)
        if not candidates:
            return None
        best = candidates[0]
        for candidate in candidates[1:]:
            # a package of that very name beats a provider; then the highest version
            if (candidate.info.name == name) > (best.info.name == name) or (
                (candidate.info.name == name) == (best.info.name == name)
                and compare(candidate.info.version, best.info.version) > 0
            ):
                best = candidate
        return best


def _reader(path: Path) -> Callable[[], bytes]:
    return path.read_bytes


def resolve_closure(
    names: Iterable[str], pool: PackagePool, toolchain: ToolchainIndex
) -> list[AvailablePackage]:
    """The packages to install for ``names`` (toolchain-provided names skipped), deps first."""
    chosen: dict[str, AvailablePackage] = {}
    order: list[AvailablePackage] = []

    def visit(atom: str, chain: tuple[str, ...]) -> None:
        if atom.startswith("!"):
            return
        name = split_atom(atom)
        candidate = pool.best(name)
        if candidate is None:
            if toolchain.satisfies(atom):
                return
            via = " <- ".join(reversed(chain)) if chain else "the environment"
            raise ResolveError(
                f"package {name!r} is neither in the toolchain nor in any repository "
                f"(required by {via})"
            )
        key = candidate.info.name
        if key in chosen:
            return
        chosen[key] = candidate
        for dep in candidate.info.depends:
            visit(dep, (*chain, key))
        order.append(candidate)

    for name in names:
        visit(name, ())
    return order


def install(packages: Iterable[AvailablePackage], root: Path) -> list[str]:
    """Extract each package's files into ``root``; returns ``name-version`` of each."""
    installed: list[str] = []
    for package in packages:
        try:
            pkg = read_apk(package.load(), where=package.where)
            extract(pkg.entries, root, where=package.where)
        except NanodistroError:
            raise
        installed.append(f"{package.info.name}-{package.info.version}")
    return installed
