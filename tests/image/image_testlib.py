"""Build small signed repositories of real .apk files (formats.apk.write_apk) for image tests."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from nanodistro.formats.apk import write_apk
from nanodistro.formats.apkindex import write_index
from nanodistro.formats.pkginfo import PackageInfo
from nanodistro.formats.signature import SigningKey
from nanodistro.formats.tarball import TarEntry, sort_key

KEY_NAME = "test-image.rsa.pub"
BUILD_DATE = 1_700_000_000


def make_key(directory: Path, name: str = KEY_NAME) -> SigningKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    key = SigningKey(pem, name)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(key.public_pem())
    return key


@dataclass
class Pkg:
    name: str
    version: str = "1.0-r0"
    files: dict[str, bytes] = field(default_factory=dict)  # path -> content
    symlinks: dict[str, str] = field(default_factory=dict)
    dirs: list[str] = field(default_factory=list)
    modes: dict[str, int] = field(default_factory=dict)
    depends: list[str] = field(default_factory=list)
    provides: list[str] = field(default_factory=list)
    origin: str = ""
    license: str = "MIT"
    scripts: dict[str, bytes] = field(default_factory=dict)
    triggers: list[str] = field(default_factory=list)
    builddate: int = BUILD_DATE


def entries_for(pkg: Pkg) -> list[TarEntry]:
    entries: dict[str, TarEntry] = {}

    def add_parents(path: str) -> None:
        parts = path.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            directory = "/".join(parts[:depth])
            entries.setdefault(
                directory, TarEntry(directory, "dir", mode=0o755, mtime=pkg.builddate)
            )

    for directory in pkg.dirs:
        add_parents(directory + "/x")
    for path, content in pkg.files.items():
        add_parents(path)
        mode = pkg.modes.get(path, 0o755 if "bin/" in path else 0o644)
        entries[path] = TarEntry(path, "file", mode=mode, mtime=pkg.builddate, data=content)
    for path, target in pkg.symlinks.items():
        add_parents(path)
        entries[path] = TarEntry(path, "symlink", mode=0o777, mtime=pkg.builddate, linkname=target)
    return sorted(entries.values(), key=sort_key)


def build_apk(pkg: Pkg, arch: str, key: SigningKey) -> bytes:
    info = PackageInfo(
        name=pkg.name,
        version=pkg.version,
        arch=arch,
        description=f"{pkg.name} test package",
        url="https://example.com/",
        license=pkg.license,
        origin=pkg.origin or pkg.name,
        maintainer="Tests <tests@example.com>",
        builddate=pkg.builddate,
        depends=list(pkg.depends),
        provides=list(pkg.provides),
        triggers=list(pkg.triggers),
    )
    return write_apk(
        info, entries_for(pkg), key=key, source_date_epoch=pkg.builddate, scripts=pkg.scripts
    )


def build_repo(
    root: Path, packages: list[Pkg], key: SigningKey, archs: tuple[str, ...] = ("x86_64",)
) -> Path:
    """``root/<arch>/*.apk`` + signed ``APKINDEX.tar.gz``; returns ``root``."""
    from nanodistro.formats.apk import read_apk

    for arch in archs:
        directory = root / arch
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir(parents=True)
        infos = []
        for pkg in packages:
            data = build_apk(pkg, arch, key)
            (directory / f"{pkg.name}-{pkg.version}.apk").write_bytes(data)
            parsed = read_apk(data, where=pkg.name)
            infos.append(parsed.info)
        (directory / "APKINDEX.tar.gz").write_bytes(
            write_index(infos, key=key, source_date_epoch=BUILD_DATE)
        )
    return root


def busybox_packages() -> list[Pkg]:
    """A tiny distro: baselayout (passwd/group, lib -> usr/lib) and a static busybox."""
    busybox = Path("/bin/busybox").read_bytes()
    baselayout = Pkg(
        "test-baselayout",
        "1.0-r0",
        files={
            "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\n",
            "etc/group": b"root:x:0:\n",
            "etc/os-release": b"ID=nanotest\nNAME=nanotest\n",
        },
        dirs=["usr/bin", "usr/lib", "root"],
        symlinks={"lib": "usr/lib", "bin": "usr/bin"},
    )
    box = Pkg(
        "busybox",
        "1.36.1-r0",
        files={"usr/bin/busybox": busybox},
        symlinks={"usr/bin/sh": "busybox", "usr/bin/id": "busybox", "usr/bin/echo": "busybox"},
        depends=["test-baselayout"],
        provides=["cmd:sh=1.36.1-r0"],
        scripts={"post-install": b"#!/bin/sh\necho installed\n"},
        triggers=["/usr/bin"],
        license="GPL-2.0-only",
    )
    app = Pkg(
        "hello-app", "2.0-r1", files={"usr/share/hello/greeting": b"hello\n"}, depends=["cmd:sh"]
    )
    return [baselayout, box, app]
