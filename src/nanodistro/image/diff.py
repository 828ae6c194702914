"""Compare two images by their installed packages (and layer sizes).

An image can be an OCI layout directory, an ``oci-archive`` tar, an apko-style lock file or a
registry reference (pulled into a temporary layout). Package lists come from the installed db
inside the layers (``usr/lib/apk/db/installed`` or ``lib/apk/db/installed``; the topmost layer
that has one wins, as it would in the unpacked filesystem).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nanodistro.errors import ConfigError, FormatError, ImageError
from nanodistro.formats.installed_db import parse_installed
from nanodistro.formats.version import compare
from nanodistro.image.lock import parse_lock
from nanodistro.image.oci_layout import Layout
from nanodistro.imageconfig.arch import Arch

INSTALLED_DB_PATHS = ("usr/lib/apk/db/installed", "lib/apk/db/installed")


@dataclass
class ArchPackages:
    packages: dict[str, str] = field(default_factory=dict)  # name -> version
    size: int | None = None  # sum of compressed layer sizes (None for locks)
    digest: str | None = None


@dataclass
class ImagePackages:
    source: str
    kind: str  # "layout" | "archive" | "lock" | "registry"
    archs: dict[str, ArchPackages] = field(default_factory=dict)


def _installed_from_layers(layout: Layout, layers: list[Any], where: str) -> dict[str, str]:
    found: bytes | None = None
    for descriptor in layers:
        for entry in layout.layer_entries(descriptor, label=where):
            if entry.type == "file" and entry.path.removeprefix("./") in INSTALLED_DB_PATHS:
                found = entry.data
    if found is None:
        return {}
    records = parse_installed(found, where=f"{where}: installed db")
    return {record.info.name: record.info.version for record in records}


def _arch_name(config: dict[str, Any]) -> str:
    architecture = str(config.get("architecture", ""))
    variant = config.get("variant")
    oci = f"{architecture}/{variant}" if variant else architecture
    try:
        return Arch.parse(oci).apk
    except ConfigError:
        return oci


def from_layout(
    location: Path, *, kind: str, source: str | None = None, tag: str | None = None
) -> ImagePackages:
    """The images of a layout, or with ``tag`` only those under that ``ref.name``."""
    layout = Layout(location)
    result = ImagePackages(source or str(location), kind)
    for image in layout.images(tag):
        arch = _arch_name(image.config)
        packages = _installed_from_layers(layout, image.manifest.layers, str(location))
        result.archs[arch] = ArchPackages(
            packages=packages,
            size=sum(layer.size for layer in image.manifest.layers),
            digest=image.descriptor.digest,
        )
    return result


def from_lock(path: Path) -> ImagePackages:
    lock = parse_lock(path.read_bytes(), where=str(path))
    result = ImagePackages(str(path), "lock")
    for package in lock.packages:
        arch = result.archs.setdefault(package.architecture, ArchPackages())
        arch.packages[package.name] = package.version
    return result


def split_layout_tag(source: str) -> tuple[Path, str] | None:
    """``DIR:TAG`` or ``ARCHIVE.tar:TAG`` (a tag of a persistent layout, ``out/images/lua:build-3``)
    when the part before the last colon is an existing layout or archive; else None."""
    location, sep, tag = source.rpartition(":")
    if not sep or not location or not tag or "/" in tag:
        return None
    path = Path(location)
    return (path, tag) if path.is_dir() or path.is_file() else None


def looks_like_a_path(source: str) -> bool:
    """A missing ``source`` the user meant as a local path, not a registry reference: written
    like a path (``./``, ``../``, ``/``, ``~``, a file suffix) or with neither a registry host
    (``host.name/``, ``host:port/``, ``localhost/``) nor a tag or digest."""
    if source.startswith(("./", "../", "/", "~", ".")) or source.endswith(
        (".tar", ".tar.gz", ".json", ".yaml")
    ):
        return True
    first, slash, _ = source.partition("/")
    has_host = bool(slash) and ("." in first or ":" in first or first == "localhost")
    has_tag = ":" in source.rpartition("/")[2] or "@" in source
    return not has_host and not has_tag


def load_image_packages(source: str, *, insecure: bool = False) -> ImagePackages:
    path = Path(source)
    if path.is_dir():
        return from_layout(path, kind="layout")
    tagged = None if path.exists() else split_layout_tag(source)
    if tagged is not None:
        kind = "layout" if tagged[0].is_dir() else "archive"
        return from_layout(tagged[0], kind=kind, source=source, tag=tagged[1])
    if path.is_file():
        head = path.read_bytes()[:1]
        if head in (b"{", b"[") or path.suffix == ".json":
            return from_lock(path)
        return from_layout(path, kind="archive")
    if looks_like_a_path(source):
        raise ImageError(
            "path does not exist (a registry reference names its host and a tag, e.g. "
            "127.0.0.1:5000/app:latest)",
            where=source,
        )
    from nanodistro.registry import pull

    with tempfile.TemporaryDirectory(prefix="nanodistro-diff-") as tmp:
        pull(source, Path(tmp) / "layout", insecure=insecure)
        return from_layout(Path(tmp) / "layout", kind="registry", source=source)


def diff_arch(old: ArchPackages, new: ArchPackages) -> dict[str, Any]:
    added: list[dict[str, str]] = []
    removed: list[dict[str, str]] = []
    upgraded: list[dict[str, str]] = []
    downgraded: list[dict[str, str]] = []
    for name in sorted(set(old.packages) | set(new.packages)):
        a, b = old.packages.get(name), new.packages.get(name)
        if a is None and b is not None:
            added.append({"name": name, "version": b})
        elif b is None and a is not None:
            removed.append({"name": name, "version": a})
        elif a is not None and b is not None and a != b:
            order = compare(a, b)
            target = upgraded if order < 0 else downgraded
            if order == 0:
                target = upgraded  # same order, different spelling: report as a change
            target.append({"name": name, "old": a, "new": b})
    change: dict[str, Any] = {
        "added": added,
        "removed": removed,
        "upgraded": upgraded,
        "downgraded": downgraded,
        "unchanged": len([n for n in old.packages if new.packages.get(n) == old.packages[n]]),
    }
    if old.size is not None and new.size is not None:
        change.update(old_size=old.size, new_size=new.size, size_change=new.size - old.size)
    return change


def diff_images(
    old: ImagePackages, new: ImagePackages, *, arch: str | None = None
) -> dict[str, Any]:
    """``{"old", "new", "archs": {arch: {added, removed, upgraded, downgraded, size...}}}``."""
    names = sorted(set(old.archs) | set(new.archs))
    if arch is not None:
        wanted = Arch.parse(arch).apk if arch not in names else arch
        names = [wanted]
    archs: dict[str, Any] = {}
    for name in names:
        if name not in old.archs and name not in new.archs:
            raise ImageError(f"neither image has architecture {name}")
        archs[name] = diff_arch(
            old.archs.get(name, ArchPackages()), new.archs.get(name, ArchPackages())
        )
    return {"old": old.source, "new": new.source, "archs": archs}


__all__ = [
    "ArchPackages",
    "FormatError",
    "ImagePackages",
    "diff_arch",
    "diff_images",
    "from_layout",
    "from_lock",
    "load_image_packages",
    "split_layout_tag",
]
