"""The Debian-based size a catalog image is compared with (apt metadata, no download)."""

from __future__ import annotations

import shutil

import pytest

from nanodistro.factory.catalog import DebianArchive

DUMP = """\
Package: base-files
Architecture: amd64
Priority: required
Installed-Size: 300
Depends: libc6 (>= 2.34)

Package: libc6
Architecture: amd64
Priority: optional
Installed-Size: 12000
Depends: libgcc-s1

Package: libgcc-s1
Architecture: amd64
Installed-Size: 140
Depends: libc6

Package: libc6
Architecture: i386
Installed-Size: 99999

Package: dash
Architecture: amd64
Essential: yes
Installed-Size: 200
Pre-Depends: libc6, debconf | debconf-2.0
Description: POSIX shell
 Depends: not-a-field

Package: debconf
Architecture: all
Installed-Size: 500

Package: cdebconf
Architecture: amd64
Installed-Size: 100
Provides: debconf-2.0

Package: lua5.4
Architecture: amd64
Installed-Size: 462
Depends: libc6 (>= 2.34), libreadline8 (>= 6.0)

Package: libreadline8
Architecture: amd64
Installed-Size: 470
Depends: readline-common, libtinfo6 (>= 6)

Package: readline-common
Architecture: all
Installed-Size: 90

Package: libtinfo6
Architecture: amd64
Installed-Size: 500

Package: bigtool
Architecture: amd64
Installed-Size: 9000
Provides: awk

Package: mawk
Architecture: amd64
Installed-Size: 250
Provides: awk

Package: needs-awk
Architecture: amd64
Installed-Size: 1
Depends: awk
"""


def test_minbase_plus_closure_sized_from_metadata() -> None:
    archive = DebianArchive(DUMP, "amd64")
    assert sorted(archive.required) == ["base-files", "dash"]
    base = archive.equivalent([])
    assert base is not None
    # base-files, dash, libc6 (amd64, not i386), libgcc-s1, and the smaller debconf provider
    assert base.closure == 5
    assert base.installed_size == (300 + 200 + 12000 + 140 + 100) * 1024
    lua = archive.equivalent(["lua5.4"])
    assert lua is not None
    assert lua.closure == 5 + 4
    assert lua.installed_size == base.installed_size + (462 + 470 + 90 + 500) * 1024


def test_virtual_names_and_unknown_packages() -> None:
    archive = DebianArchive(DUMP, "amd64")
    base = archive.equivalent([])
    awk = archive.equivalent(["needs-awk"])
    assert base is not None and awk is not None
    # the smallest provider of the virtual "awk" is taken
    assert awk.installed_size - base.installed_size == (1 + 250) * 1024
    assert archive.equivalent(["no-such-package"]) is None


@pytest.mark.skipif(shutil.which("apt-cache") is None, reason="not a Debian machine")
def test_host_archive_knows_the_minimal_system() -> None:
    archive = DebianArchive.from_host()
    if archive is None:
        pytest.skip("apt has no package lists here (apt-get update)")
    base = archive.equivalent([])
    assert base is not None and base.closure > 20 and base.installed_size > 10 * 2**20
