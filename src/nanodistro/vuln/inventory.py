"""What is installed in a root filesystem: APK packages and the language packages next to them.

A root is given as the files that matter, path -> bytes (:class:`FileSet`); :func:`files_from_dir`
reads them from a directory without following symbolic links, :func:`files_from_layers` from
image layers in memory (whiteouts applied), so nothing is ever extracted to disk. From those:

- APK: the installed db (``usr/lib/apk/db/installed`` or ``lib/apk/db/installed``), purl
  ``pkg:apk/<distro>/<name>@<version>?arch=<arch>``;
- Python: ``*.dist-info/METADATA``, ``*.egg-info/PKG-INFO`` or an ``*.egg-info`` file
  (``pkg:pypi/<normalized name>@<version>``);
- npm: ``node_modules/<name>/package.json`` and ``node_modules/@scope/<name>/package.json``
  (``pkg:npm/...``);
- Go: executable ELF files with a ``.go.buildinfo`` section: the main module, every dependency and
  the toolchain as module ``stdlib`` (``pkg:golang/<module>@<version>``).

Each language package records the APK package owning its file (``owner``): the scanner applies
that package's advisories to it, as grype does with the Wolfi secdb's ownership rule.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from packageurl import PackageURL

from nanodistro.errors import FormatError
from nanodistro.formats.gobuildinfo import read_buildinfo
from nanodistro.formats.installed_db import parse_installed
from nanodistro.formats.langmeta import npm_package, python_distribution, python_normalized_name
from nanodistro.formats.purl import apk_purl
from nanodistro.formats.tarball import TarEntry

__all__ = [
    "INSTALLED_DB_PATHS",
    "Component",
    "FileSet",
    "Inventory",
    "files_from_dir",
    "files_from_entries",
    "flatten_layers",
    "inventory_from_files",
    "is_candidate",
]

INSTALLED_DB_PATHS = ("usr/lib/apk/db/installed", "lib/apk/db/installed")
OS_RELEASE_PATHS = ("etc/os-release", "usr/lib/os-release")
_ELF = b"\x7fELF"
# Go binaries above this are not read (no real one is that large; a hostile layer may be).
MAX_BINARY = 512 * 1024**2

#: path -> (mode, bytes) of the files the inventory looks at.
FileSet = dict[str, tuple[int, bytes]]


@dataclass(frozen=True)
class Component:
    """One installed package, from one file."""

    ecosystem: str  # "apk" | "PyPI" | "npm" | "Go"
    name: str
    version: str
    purl: str
    location: str  # the file it came from, relative to the root (or the target file)
    origin: str = ""  # apk: the origin (source) package
    arch: str = ""
    owner: str = ""  # language packages: the apk package whose files include ``location``


@dataclass
class Inventory:
    components: list[Component] = field(default_factory=list)
    distro: str = ""  # os-release ID ("wolfi", "alpine", our workspace name) or the default
    distro_version: str = ""  # os-release VERSION_ID
    warnings: list[str] = field(default_factory=list)


def _is_python_meta(path: str) -> bool:
    parent, _, base = path.rpartition("/")
    return (
        (base == "METADATA" and parent.endswith(".dist-info"))
        or (base == "PKG-INFO" and parent.endswith(".egg-info"))
        or base.endswith(".egg-info")
    )


_NPM = re.compile(r"(^|/)node_modules/(@[^/]+/)?[^/@][^/]*/package\.json$")


def is_candidate(path: str, mode: int) -> bool:
    """Whether a file may feed the inventory (the ELF check happens on its bytes)."""
    return (
        path in INSTALLED_DB_PATHS
        or path in OS_RELEASE_PATHS
        or _is_python_meta(path)
        or bool(_NPM.search(path))
        or bool(mode & 0o111)
    )


def files_from_entries(entries: Iterable[TarEntry]) -> FileSet:
    """The candidate regular files of one tree given as tar entries (an ``.apk``'s data)."""
    files: FileSet = {}
    for entry in entries:
        path = entry.path.removeprefix("./").strip("/")
        if entry.type != "file" or not is_candidate(path, entry.mode):
            continue
        if _is_exec_only(path) and entry.data[:4] != _ELF:
            continue
        files[path] = (entry.mode, entry.data)
    return files


def _is_exec_only(path: str) -> bool:
    """True when only the executable bit made ``path`` a candidate."""
    return not (
        path in INSTALLED_DB_PATHS
        or path in OS_RELEASE_PATHS
        or _is_python_meta(path)
        or _NPM.search(path)
    )


def flatten_layers(layers: Iterable[list[TarEntry]]) -> FileSet:
    """The candidate files of the filesystem the layers make, lowest layer first (OCI whiteouts:
    ``.wh.<name>`` deletes ``<name>`` and all below it, ``.wh..wh..opq`` empties its directory
    of what lower layers put there)."""
    files: FileSet = {}

    def drop_under(prefix: str) -> None:
        for path in [p for p in files if p == prefix or p.startswith(prefix + "/")]:
            del files[path]

    for entries in layers:
        for entry in entries:  # opaque directories hide lower layers only: apply them first
            path = entry.path.removeprefix("./").strip("/")
            parent, _, base = path.rpartition("/")
            if base == ".wh..wh..opq":
                for lower in [p for p in files if p.startswith(parent + "/") or not parent]:
                    del files[lower]
        for entry in entries:
            path = entry.path.removeprefix("./").strip("/")
            parent, _, base = path.rpartition("/")
            if base == ".wh..wh..opq":
                continue
            if base.startswith(".wh."):
                drop_under(f"{parent}/{base[4:]}" if parent else base[4:])
                continue
            drop_under(path)  # a file, link or dir replaces whatever was at that path
            if entry.type == "file" and is_candidate(path, entry.mode):
                if _is_exec_only(path) and entry.data[:4] != _ELF:
                    continue
                files[path] = (entry.mode, entry.data)
    return files


def files_from_dir(root: Path) -> FileSet:
    """The candidate files beneath ``root``; symbolic links are never followed (a link named
    ``usr/lib/apk/db/installed`` pointing at the host's db is not read)."""
    files: FileSet = {}
    root = Path(root)
    for directory, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(directory, name)
            path = os.path.relpath(full, root).replace(os.sep, "/")
            info = os.lstat(full)
            if not stat.S_ISREG(info.st_mode) or not is_candidate(path, info.st_mode):
                continue
            exec_only = _is_exec_only(path)
            if exec_only and info.st_size > MAX_BINARY:
                continue
            try:
                fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError:
                continue  # unreadable or replaced meanwhile: not inventory
            with os.fdopen(fd, "rb") as handle:
                if exec_only and handle.read(4) != _ELF:
                    continue
                handle.seek(0)
                files[path] = (info.st_mode, handle.read())
    return files


def _os_release(files: Mapping[str, tuple[int, bytes]]) -> dict[str, str]:
    for path in OS_RELEASE_PATHS:
        if path in files:
            values: dict[str, str] = {}
            for line in files[path][1].decode("utf-8", "replace").splitlines():
                key, sep, value = line.partition("=")
                if sep:
                    values[key.strip()] = value.strip().strip("\"'")
            return values
    return {}


def _python_purl(name: str, version: str) -> str:
    return str(PackageURL(type="pypi", name=python_normalized_name(name), version=version))


def _npm_purl(name: str, version: str) -> str:
    scope, _, base = name.rpartition("/")
    return str(PackageURL(type="npm", namespace=scope or None, name=base, version=version))


def _go_purl(module: str, version: str) -> str:
    namespace, _, name = module.rpartition("/")
    return str(PackageURL(type="golang", namespace=namespace or None, name=name, version=version))


def _go_components(path: str, data: bytes) -> list[Component]:
    info = read_buildinfo(data)
    if info is None:
        return []
    found: list[Component] = []
    modules = ([info.main] if info.main else []) + info.deps
    for module in modules:
        if module.version and module.version != "(devel)":
            found.append(
                Component(
                    "Go", module.path, module.version, _go_purl(module.path, module.version), path
                )
            )
    go_version = info.go_version.split()[0].removeprefix("go")  # "go1.22.1 X:boringcrypto"
    if go_version:
        found.append(Component("Go", "stdlib", go_version, _go_purl("stdlib", go_version), path))
    return found


def inventory_from_files(
    files: Mapping[str, tuple[int, bytes]],
    *,
    distro: str,
    where: str,
    owner: str = "",
    own: bool = False,
) -> Inventory:
    """The packages in ``files``; ``distro`` names the apk purls' namespace unless the root's
    os-release says otherwise (``own``: a root of our own distro ``distro``, whose os-release
    ``ID`` may be any name, so ``distro`` wins); ``owner`` marks every language package as part
    of that apk."""
    os_release = _os_release(files)
    inventory = Inventory(
        distro=(distro if own else (os_release.get("ID") or distro)).lower(),
        distro_version=os_release.get("VERSION_ID", ""),
    )
    owners: dict[str, str] = {}
    for db_path in INSTALLED_DB_PATHS:
        if db_path not in files:
            continue
        try:
            records = parse_installed(files[db_path][1], where=f"{where}: {db_path}")
        except FormatError as error:
            inventory.warnings.append(f"{error}; its packages are not scanned")
            continue
        for record in records:
            info = record.info
            arch = info.arch or "noarch"
            inventory.components.append(
                Component(
                    "apk",
                    info.name,
                    info.version,
                    apk_purl(inventory.distro, info.name, info.version, arch),
                    db_path,
                    origin=info.origin or info.name,
                    arch=arch,
                )
            )
            for owned in record.paths():
                owners.setdefault(owned, info.name)
        break  # the first db found is the one apk uses
    for path in sorted(files):
        data = files[path][1]
        found: list[Component] = []
        if _is_python_meta(path):
            meta = python_distribution(data)
            if meta:
                found.append(Component("PyPI", meta[0], meta[1], _python_purl(*meta), path))
        elif _NPM.search(path):
            meta = npm_package(data)
            if meta:
                found.append(Component("npm", meta[0], meta[1], _npm_purl(*meta), path))
        elif path not in INSTALLED_DB_PATHS and data[:4] == _ELF:
            found.extend(_go_components(path, data))
        for component in found:
            who = owner or owners.get(path, "")
            inventory.components.append(
                Component(
                    component.ecosystem,
                    component.name,
                    component.version,
                    component.purl,
                    component.location,
                    owner=who,
                )
            )
    return inventory
