"""Install verified packages into an in-memory root the way apko does (apko pkg/build/apk.go,
pkg/apk/apk/implementation.go, installed.go, pkg/build/accounts.go, pkg/build/paths.go).

Packages are installed in resolution order; their scripts and triggers are recorded but never
run (apko does not run them either). Files the assembler writes itself carry
``source_date_epoch`` as mtime; package files keep the mtimes from their archives.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field

from nanodistro.errors import ImageError
from nanodistro.formats.installed_db import (
    SCRIPT_NAMES,
    FsEntry,
    InstalledPackage,
    file_blocks,
    format_installed,
    format_triggers_line,
    q1_from_hex,
    script_member_name,
)
from nanodistro.formats.pkginfo import apk_filename
from nanodistro.formats.tarball import TarEntry, validate_entries, write_tar
from nanodistro.image.accounts import apply_accounts
from nanodistro.image.apkfile import ApkFile
from nanodistro.image.busybox import install_busybox_links
from nanodistro.image.certificates import apply_certificates
from nanodistro.image.rootfs import Node, RootFS
from nanodistro.imageconfig.arch import APK_TO_OCI
from nanodistro.imageconfig.model import ImageConfig, PathMutation

APK_DB_DIR = "usr/lib/apk/db"
INSTALLED_PATH = f"{APK_DB_DIR}/installed"

# apko InitDB: base directories and their modes.
_BASE_DIRS: tuple[tuple[str, int], ...] = (
    ("tmp", 0o1777),
    ("dev", 0o755),
    ("etc", 0o755),
    ("opt", 0o755),
    ("proc", 0o555),
    ("var", 0o755),
    ("usr", 0o755),
    ("etc/apk", 0o755),
    ("etc/apk/keys", 0o755),
    ("usr/lib", 0o755),
    ("usr/lib/apk", 0o755),
    ("usr/lib/apk/db", 0o755),
    ("usr/lib/apk/exec", 0o755),
    ("var/cache", 0o755),
    ("var/cache/apk", 0o755),
    ("var/cache/misc", 0o755),
)
# (path, major, minor, mode) as apko's InitDB creates them.
_DEVICES: tuple[tuple[str, int, int, int], ...] = (
    ("dev/zero", 1, 5, 0o666),
    ("dev/urandom", 1, 9, 0o666),
    ("dev/null", 1, 3, 0o666),
    ("dev/random", 1, 8, 0o666),
    ("dev/console", 5, 1, 0o620),
)


@dataclass
class InstalledImagePackage:
    apk: ApkFile
    record: InstalledPackage
    repository: str = ""


@dataclass
class AssembledRoot:
    fs: RootFS
    packages: list[InstalledImagePackage] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # apko steps only partly done

    def package_names(self) -> list[str]:
        return [p.apk.name for p in self.packages]


def _synth(fs: RootFS, path: str, data: bytes, *, mode: int = 0o644, mtime: int) -> None:
    fs.put(TarEntry(path, "file", mode=mode, data=data, mtime=mtime))


def init_db(fs: RootFS, *, apk_arch: str, mtime: int) -> None:
    for path, mode in _BASE_DIRS:
        fs.put(TarEntry(path, "dir", mode=mode, mtime=mtime))
    _synth(fs, "etc/apk/world", b"\n", mtime=mtime)
    _synth(fs, "etc/apk/repositories", b"\n", mtime=mtime)
    _synth(fs, f"{APK_DB_DIR}/lock", b"", mode=0o600, mtime=mtime)
    _synth(fs, f"{APK_DB_DIR}/triggers", b"", mtime=mtime)
    _synth(fs, INSTALLED_PATH, b"", mtime=mtime)
    _synth(fs, "etc/apk/arch", f"{apk_arch}\n".encode(), mtime=mtime)
    _synth(fs, f"{APK_DB_DIR}/scripts.tar", write_tar([]), mtime=mtime)
    for path, major, minor, mode in _DEVICES:
        fs.put(TarEntry(path, "chr", mode=mode, devmajor=major, devminor=minor, mtime=mtime))


def install_package(
    fs: RootFS, apk: ApkFile, owners: dict[str, InstalledImagePackage]
) -> InstalledImagePackage:
    """Extract one package's data entries; ``owners`` maps canonical paths to their package."""
    where = apk_filename(apk.name, apk.version)
    validate_entries(apk.entries, where, allow_devices=False)
    fs_entries: list[FsEntry] = []
    for entry in apk.entries:
        if entry.path in (".", ""):
            continue
        resolved = fs.put(entry, owner=apk.name)
        if entry.type == "dir":
            fs_entries.append(FsEntry(entry.path, "dir", entry.mode, entry.uid, entry.gid))
            continue
        previous = owners.get(resolved)
        if previous is not None and previous.apk.name != apk.name:
            _drop_file(previous.record, resolved, entry.path)
        kind = "symlink" if entry.type == "symlink" else "file"
        checksum = entry.pax_checksum or entry.content_sha1()
        digest = q1_from_hex(checksum) if checksum else None
        mode = 0o777 if entry.type == "symlink" else entry.mode
        fs_entries.append(FsEntry(entry.path, kind, mode, entry.uid, entry.gid, digest))  # type: ignore[arg-type]
    record = InstalledPackage(info=apk.info.copy(), dirs=file_blocks(fs_entries))
    image_package = InstalledImagePackage(apk, record)
    for entry in apk.entries:
        if entry.type != "dir" and entry.path not in (".", ""):
            owners[fs.resolve(entry.path, follow_last=False)] = image_package
    return image_package


def _drop_file(record: InstalledPackage, resolved: str, path: str) -> None:
    """A later package overwrote this file: it leaves the earlier package's list (apko)."""
    for directory in record.dirs:
        prefix = f"{directory.path}/" if directory.path else ""
        directory.files = [
            f for f in directory.files if prefix + f.name not in (resolved, path.strip("/"))
        ]


def write_apk_db(
    fs: RootFS,
    packages: list[InstalledImagePackage],
    *,
    world: list[str],
    repositories: list[str],
    keyring: Mapping[str, bytes],
    mtime: int,
) -> None:
    _synth(fs, INSTALLED_PATH, format_installed(p.record for p in packages).encode(), mtime=mtime)
    scripts: list[TarEntry] = []
    triggers: list[str] = []
    for package in packages:
        apk = package.apk
        for script, content in sorted(apk.scripts.items()):
            if script.removeprefix(".") not in SCRIPT_NAMES:
                continue
            name = script_member_name(apk.name, apk.version, apk.identity, script)
            scripts.append(TarEntry(name, "file", mode=0o755, mtime=mtime, data=content))
        if apk.info.triggers:
            triggers.append(format_triggers_line(apk.identity, apk.info.triggers))
    _synth(fs, f"{APK_DB_DIR}/scripts.tar", write_tar(scripts), mtime=mtime)
    _synth(fs, f"{APK_DB_DIR}/triggers", "".join(triggers).encode(), mtime=mtime)
    _synth(fs, "etc/apk/world", ("\n".join(sorted(set(world))) + "\n").encode(), mtime=mtime)
    # ``legacy:`` is nanodistro's marker (resolve.repositories), not apk-tools syntax.
    repos = sorted({" ".join(w.removeprefix("legacy:") for w in r.split()) for r in repositories})
    _synth(fs, "etc/apk/repositories", ("\n".join(repos) + "\n").encode(), mtime=mtime)
    for name, pem in sorted(keyring.items()):
        _synth(fs, f"etc/apk/keys/{posixpath.basename(name)}", pem, mtime=mtime)
    _link_lib_apk(fs, mtime=mtime)


def _link_lib_apk(fs: RootFS, *, mtime: int) -> None:
    """``lib/apk`` -> ``../usr/lib/apk`` unless /lib already leads to usr/lib (apko resolveApkDB)."""
    if fs.resolve("lib") == "usr/lib" or fs.resolve("lib/apk") == "usr/lib/apk":
        return
    if fs.get("lib/apk", follow=False) is not None:
        return
    if fs.get("lib") is None:
        fs.put(TarEntry("lib", "dir", mode=0o755, mtime=mtime))
    fs.put(TarEntry("lib/apk", "symlink", mode=0o777, linkname="../usr/lib/apk", mtime=mtime))


# ---- paths ------------------------------------------------------------------------------------


def _set_meta(node: Node, mutation: PathMutation) -> None:
    entry = node.entry
    entry.uid, entry.gid = mutation.uid, mutation.gid
    if mutation.permissions is not None:
        entry.mode = mutation.permissions


def apply_paths(fs: RootFS, config: ImageConfig, *, mtime: int) -> None:
    """apko ``paths`` mutations (pkg/build/paths.go)."""
    for mutation in config.paths:
        path = mutation.path.strip("/")
        where = f"paths: {mutation.path}"
        if mutation.type == "directory":
            node = fs.get(path)
            if node is None:
                fs.put(TarEntry(path, "dir", mode=mutation.mode, mtime=mtime), follow_last=True)
                node = fs.get(path)
            elif node.entry.type != "dir":
                raise ImageError(f"{mutation.path} exists and is not a directory", where=where)
            assert node is not None
            _set_meta(node, mutation)
            if mutation.permissions is None:
                node.entry.mode = 0o755
        elif mutation.type == "empty-file":
            fs.put(TarEntry(path, "file", mode=mutation.mode, mtime=mtime))
            node = fs.get(path)
            assert node is not None
            _set_meta(node, mutation)
        elif mutation.type == "hardlink":
            if fs.get(mutation.source) is None:
                raise ImageError(f"hardlink source {mutation.source} does not exist", where=where)
            fs.put(TarEntry(path, "hardlink", linkname=mutation.source.strip("/"), mtime=mtime))
            target = fs.get(mutation.source)
            if target is not None and (mutation.permissions is not None or mutation.uid):
                _set_meta(target, mutation)
        elif mutation.type == "symlink":
            fs.put(
                TarEntry(
                    path,
                    "symlink",
                    mode=0o777,
                    linkname=mutation.source,
                    uid=mutation.uid,
                    gid=mutation.gid,
                    mtime=mtime,
                )
            )
        else:  # permissions
            node = fs.get(path)
            if node is None:
                raise ImageError(f"{mutation.path} does not exist", where=where)
            _set_meta(node, mutation)
        if mutation.recursive and mutation.type in ("directory", "permissions"):
            for child in fs.children(path):
                child_node = fs.nodes[child]
                if child_node.entry.type in ("symlink", "hardlink"):
                    continue
                child_node.entry.uid, child_node.entry.gid = mutation.uid, mutation.gid
                if mutation.permissions is not None:
                    child_node.entry.mode = mutation.permissions


def apply_services(fs: RootFS, config: ImageConfig, *, mtime: int) -> None:
    """s6 supervision tree for ``entrypoint.type: service-bundle`` (apko pkg/build/s6)."""
    if config.entrypoint.type != "service-bundle":
        return
    fs.put(TarEntry("sv", "dir", mode=0o755, mtime=mtime))
    for name, command in sorted(config.entrypoint.services.items()):
        fs.put(TarEntry(f"sv/{name}", "dir", mode=0o755, mtime=mtime))
        run = f"#!/bin/execlineb\n{command}\n".encode()
        _synth(fs, f"sv/{name}/run", run, mode=0o755, mtime=mtime)


def apply_runtime_keyring(fs: RootFS, config: ImageConfig, *, mtime: int) -> None:
    for key in config.contents.runtime_keyring:
        name = posixpath.basename(key.name)
        if not name or name in (".", ".."):
            raise ImageError(f"invalid runtime key name {key.name!r}", field="runtime_keyring")
        _synth(fs, f"etc/apk/keys/{name}", key.content.encode(), mtime=mtime)


def write_etc_apko_json(
    fs: RootFS, config: ImageConfig, *, apk_arch: str, world: list[str], mtime: int
) -> None:
    """``/etc/apko.json``: the resolved configuration, read-only (apko WriteEtcApkoConfig)."""
    doc = config.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    doc.pop("include", None)
    doc.setdefault("contents", {})["packages"] = list(world)
    doc["archs"] = [APK_TO_OCI.get(apk_arch, apk_arch)]
    data = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
    _synth(fs, "etc/apko.json", data, mode=0o444, mtime=mtime)


def assemble_root(
    config: ImageConfig,
    apks: list[tuple[ApkFile, str]],
    *,
    apk_arch: str,
    keyring: Mapping[str, bytes],
    runtime_repositories: list[str],
    world: list[str],
    source_date_epoch: int = 0,
    build_date: int | None = None,
) -> AssembledRoot:
    """Build the whole root filesystem of one architecture's image.

    ``apks`` are verified packages in install order with the repository each came from;
    ``build_date`` (default ``source_date_epoch``) dates what apko dates with the build date
    (added certificates and the bundles they join).
    """
    fs = RootFS()
    mtime = source_date_epoch
    init_db(fs, apk_arch=apk_arch, mtime=mtime)
    owners: dict[str, InstalledImagePackage] = {}
    packages: list[InstalledImagePackage] = []
    for apk, repository in apks:
        package = install_package(fs, apk, owners)
        package.repository = repository
        packages.append(package)
    apply_accounts(fs, config, mtime=mtime)
    write_etc_apko_json(fs, config, apk_arch=apk_arch, world=world, mtime=mtime)
    apply_paths(fs, config, mtime=mtime)
    warnings: list[str] = []
    if config.certificates is not None:
        warnings = apply_certificates(
            fs,
            [(c.name, c.content) for c in config.certificates.additional],
            config.certificates.providers,
            [(p.apk.info.provides, p.record.paths()) for p in packages],
            mtime=source_date_epoch if build_date is None else build_date,
        )
    apply_services(fs, config, mtime=mtime)
    warnings += install_busybox_links(
        fs,
        [(p.apk.name, p.apk.version, p.apk.info.provides) for p in packages],
        mtime=mtime,
    )
    write_apk_db(
        fs,
        packages,
        world=world,
        repositories=runtime_repositories,
        keyring=keyring,
        mtime=mtime,
    )
    apply_runtime_keyring(fs, config, mtime=mtime)
    return AssembledRoot(fs, packages, warnings)
