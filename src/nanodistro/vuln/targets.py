"""Turn a scan target into inventories, one per image platform (or repository arch).

TARGET is, in this order of checks:
- ``DIR`` with ``index.json``: an OCI layout (every platform image); ``DIR:TAG`` / ``ARCHIVE:TAG``:
  only the images under that ``ref.name`` (as ``image diff`` reads them);
- ``DIR`` holding ``<arch>/APKINDEX.tar.gz``: a repository, every package in each index
  (signature-checked when a keyring is given; otherwise a warning says it was not);
- any other ``DIR``: a root filesystem;
- a ``.apk`` file: that package plus the language packages in its data;
- another file: an ``oci-archive`` tar;
- otherwise a registry reference, pulled into a temporary layout.

Which apk distro (OSV ecosystem, purl namespace) the packages belong to: an ``.apk`` and a
repository are always ``distro`` (the caller's: the workspace name inside a workspace). An image
or root says it in its os-release ``ID``, which wins over ``distro`` for a foreign image (a Wolfi
or Alpine one) — except with ``own=True``, for the images of the workspace itself: their
os-release ``ID`` comes from a baselayout recipe and may be any name, while our feeds and advisories
use the workspace name as the ecosystem, so ``distro`` wins there.

Layers are read in memory (formats/tarread, whiteouts applied by vuln/inventory.py); nothing is
extracted, so a hostile layer cannot write anywhere.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from nanodistro.errors import ImageError
from nanodistro.formats.apk import read_apk
from nanodistro.formats.apkindex import read_index
from nanodistro.formats.purl import apk_purl
from nanodistro.image.diff import _arch_name, split_layout_tag
from nanodistro.image.oci_layout import Layout
from nanodistro.vuln.inventory import (
    Component,
    Inventory,
    files_from_dir,
    files_from_entries,
    flatten_layers,
    inventory_from_files,
)

__all__ = ["ScanTarget", "load_targets"]

INDEX_FILE = "APKINDEX.tar.gz"


@dataclass
class ScanTarget:
    label: str  # what the report names: "<target>", "<target> (x86_64)"
    kind: str  # "layout" | "archive" | "registry" | "repository" | "apk" | "root"
    inventory: Inventory


def _from_layout(
    location: Path, *, label: str, kind: str, tag: str | None, distro: str, own: bool
) -> list[ScanTarget]:
    layout = Layout(location)
    found: list[ScanTarget] = []
    for image in layout.images(tag):
        arch = _arch_name(image.config)
        layers = [layout.layer_entries(d, label=label) for d in image.manifest.layers]
        files = flatten_layers(layers)
        inventory = inventory_from_files(files, distro=distro, where=f"{label} ({arch})", own=own)
        found.append(ScanTarget(f"{label} ({arch})", kind, inventory))
    if not found:
        raise ImageError("no image in the layout", where=label)
    return found


def _from_apk(path: Path, *, distro: str) -> ScanTarget:
    package = read_apk(path.read_bytes(), where=str(path))
    info = package.info
    files = files_from_entries(package.entries)
    # own: the package's data may carry an os-release (a baselayout's) naming another distro
    inventory = inventory_from_files(
        files, distro=distro, where=str(path), owner=info.name, own=True
    )
    arch = info.arch or "noarch"
    inventory.components.insert(
        0,
        Component(
            "apk",
            info.name,
            info.version,
            apk_purl(distro, info.name, info.version, arch),
            path.name,
            origin=info.origin or info.name,
            arch=arch,
        ),
    )
    return ScanTarget(str(path), "apk", inventory)


def _repository_arches(path: Path) -> list[Path]:
    return sorted(p.parent for p in path.glob(f"*/{INDEX_FILE}") if p.is_file())


def _from_repository(
    path: Path, arch_dirs: list[Path], *, distro: str, keyring: Mapping[str, bytes] | None
) -> list[ScanTarget]:
    found = []
    for arch_dir in arch_dirs:
        where = str(arch_dir / INDEX_FILE)
        index = read_index((arch_dir / INDEX_FILE).read_bytes(), where=where, keyring=keyring)
        inventory = Inventory(distro=distro)
        if keyring is None:
            inventory.warnings.append(f"{where}: signature not verified (no keyring given)")
        location = f"{arch_dir.name}/{INDEX_FILE}"
        for info in index.packages:
            arch = info.arch or arch_dir.name
            inventory.components.append(
                Component(
                    "apk",
                    info.name,
                    info.version,
                    apk_purl(distro, info.name, info.version, arch),
                    location,
                    origin=info.origin or info.name,
                    arch=arch,
                )
            )
        found.append(ScanTarget(f"{path} ({arch_dir.name})", "repository", inventory))
    return found


def load_targets(
    target: str,
    *,
    distro: str,
    keyring: Mapping[str, bytes] | None = None,
    insecure: bool = False,
    own: bool = False,
) -> list[ScanTarget]:
    """Inventories of ``target`` (see the module docstring for what it may be; ``own``: the
    target is the workspace's own image, ``distro`` wins over its os-release)."""
    path = Path(target)
    if path.is_dir():
        if (path / "index.json").is_file():
            return _from_layout(path, label=target, kind="layout", tag=None, distro=distro, own=own)
        arch_dirs = _repository_arches(path)
        if arch_dirs:
            return _from_repository(path, arch_dirs, distro=distro, keyring=keyring)
        inventory = inventory_from_files(files_from_dir(path), distro=distro, where=target, own=own)
        return [ScanTarget(target, "root", inventory)]
    tagged = None if path.exists() else split_layout_tag(target)
    if tagged is not None:
        kind = "layout" if tagged[0].is_dir() else "archive"
        return _from_layout(
            tagged[0], label=target, kind=kind, tag=tagged[1], distro=distro, own=own
        )
    if path.is_file():
        if path.suffix == ".apk":
            return [_from_apk(path, distro=distro)]
        return _from_layout(path, label=target, kind="archive", tag=None, distro=distro, own=own)
    if "/" not in target and ":" not in target:
        raise ImageError("no such file or directory, and not a registry reference", where=target)
    from nanodistro.registry import pull

    with tempfile.TemporaryDirectory(prefix="nanodistro-scan-") as tmp:
        pull(target, Path(tmp) / "layout", insecure=insecure)
        return _from_layout(
            Path(tmp) / "layout", label=target, kind="registry", tag=None, distro=distro, own=own
        )
