"""A stand-in repository for the build host's C library (tests that link glibc)."""

from __future__ import annotations

from pathlib import Path

HOST_LIBC = "host-glibc"


def host_libc_repository(directory: Path, key_path: Path) -> Path:
    """A signed repository with one empty package that provides the host C library's sonames.

    The test projects link against the build host's glibc (the toolchain root), which no
    catalog package provides, so the consistency gate rightly refuses to publish them. Real
    workspaces get libc from a repository (the examples build musl); the tests get this
    stand-in, which installs no files: a test that runs a glibc program declares ``build-base``
    and gets the host's libc through the toolchain mount.
    """
    from nanodistro.builder.runners import DEFAULT_LIBC_SONAMES
    from nanodistro.formats.apk import write_apk
    from nanodistro.formats.pkginfo import PackageInfo
    from nanodistro.repo.repository import publish
    from nanodistro.trust.keys import load_signing_key

    repo = directory / "host-libc-repo"
    if (repo / "x86_64" / "APKINDEX.tar.gz").is_file():
        return repo
    key = load_signing_key(key_path)
    info = PackageInfo(
        name=HOST_LIBC,
        version="2.36-r0",
        arch="x86_64",
        description="stand-in for the build host's C library (tests only)",
        license="LGPL-2.1-or-later",
        provides=[f"so:{soname}=0" for soname in sorted(DEFAULT_LIBC_SONAMES)],
    )
    staging = directory / "host-libc-staging"
    staging.mkdir(parents=True, exist_ok=True)
    apk = staging / f"{HOST_LIBC}-2.36-r0.apk"
    apk.write_bytes(write_apk(info, [], key=key, source_date_epoch=1_700_000_000))
    publish([apk], repo, key)
    return repo
