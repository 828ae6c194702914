"""installed db codec against the real databases apk-tools and apko wrote (formats.md §3)."""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile

import pytest

from fixture_paths import THIRD_PARTY
from nanodistro.errors import FormatError
from nanodistro.formats.installed_db import (
    Acl,
    FsEntry,
    InstalledPackage,
    file_blocks,
    format_installed,
    format_triggers_line,
    parse_installed,
    parse_script_member_name,
    parse_triggers,
    script_member_name,
)
from nanodistro.formats.pkginfo import PackageInfo

APKO_TESTDATA = THIRD_PARTY / "chainguard-dev+apko/pkg/apk/apk/testdata"
AT_WRITTEN = [
    APKO_TESTDATA / "root/usr/lib/apk/db/installed",
    THIRD_PARTY / "chainguard-dev+go-apk/pkg/apk/testdata/root/lib/apk/db/installed",
]
APKO_WRITTEN = [
    APKO_TESTDATA / "installed/wolfi-base",
    APKO_TESTDATA / "installed/redis-operator-compat",
    THIRD_PARTY / "aquasecurity+trivy/pkg/fanal/analyzer/testdata/lib/apk/db/installed",
]


@pytest.mark.parametrize("path", AT_WRITTEN, ids=lambda p: p.parent.name)
def test_apk_tools_database_is_reproduced_byte_for_byte(path):
    data = path.read_bytes()
    packages = parse_installed(data, where=str(path))
    assert len(packages) == 14
    assert format_installed(packages).encode() == data


@pytest.mark.parametrize("path", AT_WRITTEN + APKO_WRITTEN, ids=lambda p: p.name)
def test_round_trip_keeps_every_record(path):
    packages = parse_installed(path.read_bytes(), where=str(path))
    assert packages
    again = parse_installed(format_installed(packages))
    assert again == packages


def test_at_record_fields():
    packages = parse_installed((APKO_TESTDATA / "root/usr/lib/apk/db/installed").read_bytes())
    busybox = next(p for p in packages if p.info.name == "busybox")
    assert busybox.info.checksum == "Q1Meo+LHGPSi3uY9gIouEVb9z8Fbo="
    assert busybox.info.version == "1.35.0-r17"
    assert busybox.info.file_size == 520738
    assert busybox.info.provides == ["/bin/sh", "cmd:busybox=1.35.0-r17", "cmd:sh=1.35.0-r17"]
    assert busybox.replaces == ["busybox-initscripts"]
    bin_dir = busybox.dirs[0]
    assert bin_dir.path == "bin"
    sh = next(f for f in bin_dir.files if f.name == "sh")
    assert sh.acl == Acl(0, 0, 0o777)
    # symlink digest = sha1 of the target string (formats.md §3.2, verified)
    expected = "Q1" + base64.b64encode(hashlib.sha1(b"/bin/busybox").digest()).decode()
    assert sh.digest == expected
    tmp = next(d for p in packages for d in p.dirs if d.path == "tmp")
    assert tmp.acl == Acl(0, 0, 0o1777)
    assert "bin/busybox" in busybox.paths()


def test_apko_record_quirks():
    packages = parse_installed((APKO_TESTDATA / "installed/wolfi-base").read_bytes())
    names = sorted(p.info.name for p in packages)
    assert "wolfi-baselayout" in names and len(names) == 15
    base = next(p for p in packages if p.info.name == "wolfi-baselayout")
    assert base.info.install_if == []  # apko's "i:[]"
    assert base.info.provider_priority == 0  # "k:0" kept
    assert base.info.checksum == "Q15GKR2cusJFuJW5jYQBxRRQK9xTs="
    mtab = next(f for d in base.dirs for f in d.files if f.name == "mtab")
    assert mtab.acl == Acl(0, 0, 0o777)  # "a:0:0:0777"


def test_apko_root_directory_files():
    packages = parse_installed((APKO_TESTDATA / "installed/redis-operator-compat").read_bytes())
    compat = next(p for p in packages if p.info.name == "redis-operator-compat")
    assert compat.dirs[0].path == ""
    assert "operator" in compat.paths()


def test_top_level_dir_acl_is_rejected_like_apko():
    with pytest.raises(FormatError, match="top-level directory") as info:
        parse_installed((APKO_TESTDATA / "installed/bad-top-level-perms").read_bytes(), "db")
    assert info.value.line == 16


@pytest.mark.parametrize(
    "text, message",
    [
        ("P:a\nV:1\nR:x\n\n", "before any 'F:'"),
        ("P:a\nV:1\nF:x\nZ:Q1\n\n", "without an 'R:'"),
        ("P:a\nV:1\nF:x\nM:0:0:9\n\n", "octal mode"),
        ("P:a\nV:1\nF:x\nR:y\na:0:x:644\n\n", "non-negative integer"),
        ("P:a\nV:1\nS:12a\n\n", "non-negative integer"),
        ("V:1\n\n", "no 'P:'"),
        ("P:a\nbogus\n\n", "expected '<letter>:<value>'"),
    ],
)
def test_bad_records_name_line_and_problem(text, message):
    with pytest.raises(FormatError, match=message) as info:
        parse_installed(text, where="installed")
    assert info.value.where == "installed"


def test_installed_only_letters_round_trip():
    text = (
        "C:Q1Meo+LHGPSi3uY9gIouEVb9z8Fbo=\nP:x\nV:1-r0\nT:\nU:\nL:MIT\n"
        "g:tag1 tag2\nr:old\nq:5\ns:edge\nf:S\nF:usr/bin\nM:1000:1000:750:Q1abc\n"
        "R:tool\na:0:0:4755\nZ:Q1z9q8GKcLmzboM90vMuZaj47yeOU=\n\n"
    )
    packages = parse_installed(text)
    pkg = packages[0]
    assert pkg.tags == ["tag1", "tag2"]
    assert pkg.replaces_priority == 5 and pkg.repo_tag == "edge" and pkg.flags == "S"
    assert pkg.dirs[0].acl == Acl(1000, 1000, 0o750, "Q1abc")
    assert format_installed(packages) == text


def test_file_blocks_omit_default_acls():
    entries = [
        FsEntry("etc", "dir", 0o755),
        FsEntry("etc/passwd", "file", 0o644, digest="Q1a"),
        FsEntry("etc/shadow", "file", 0o640, gid=42, digest="Q1b"),
        FsEntry("tmp", "dir", 0o1777),
        FsEntry("bin/sh", "symlink", 0o777, digest="Q1c"),
    ]
    pkg = InstalledPackage(PackageInfo(name="x", version="1"), dirs=file_blocks(entries))
    text = format_installed([pkg])
    assert "F:etc\nR:passwd\nZ:Q1a\nR:shadow\na:0:42:640\nZ:Q1b\nF:tmp\nM:0:0:1777\n" in text
    assert "F:bin\nR:sh\na:0:0:777\nZ:Q1c\n" in text


def test_scripts_tar_names_match_fixture():
    with tarfile.open(APKO_TESTDATA / "root/usr/lib/apk/db/scripts.tar") as tar:
        names = tar.getnames()
    assert (
        script_member_name(
            "busybox", "1.35.0-r17", "Q1Meo+LHGPSi3uY9gIouEVb9z8Fbo=", ".post-install"
        )
        in names
    )
    for name in names:
        namever, identity, script = parse_script_member_name(name)
        name_part, _, version = namever.rpartition("-")
        name_part, _, version_head = name_part.rpartition("-")
        assert script_member_name(name_part, f"{version_head}-{version}", identity, script) == name
    with pytest.raises(FormatError, match="unknown script 'not-a-script'; expected one of pre-in"):
        script_member_name("a", "1", "Q1x", "not-a-script")


def test_triggers_line_matches_fixture():
    data = (APKO_TESTDATA / "root/usr/lib/apk/db/triggers").read_bytes()
    entries = parse_triggers(data)
    assert entries == [
        (
            "Q1Meo+LHGPSi3uY9gIouEVb9z8Fbo=",
            ["/bin", "/usr/bin", "/sbin", "/usr/sbin", "/lib/modules/*"],
        )
    ]
    assert "".join(format_triggers_line(i, g) for i, g in entries).encode() == data


def test_non_utf8_is_a_format_error():
    with pytest.raises(FormatError, match=r"^lib/apk/db/installed: not UTF-8 text \(byte 2\)$"):
        parse_installed(io.BytesIO(b"P:\xff\n").getvalue())


def test_installed_package_from_a_real_apk_matches_apk_tools_record():
    """alpine-baselayout as apk-tools recorded it in the fixture database vs built from the .apk."""
    from nanodistro.formats.apk import read_apk
    from nanodistro.formats.installed_db import installed_package

    apk = APKO_TESTDATA / "alpine-317/alpine-baselayout-3.2.0-r23.apk"
    pkg = read_apk(apk.read_bytes(), where=str(apk))
    ours = installed_package(pkg.info, pkg.entries)
    assert ours.info.checksum == pkg.identity
    text = format_installed([ours])
    again = parse_installed(text)[0]
    assert again == ours
    # every file has a Q1 digest equal to sha1 of its content (or link target)
    by_path = {e.path: e for e in pkg.entries}
    non_dirs = [e for e in pkg.entries if e.type != "dir"]
    assert sum(len(d.files) for d in ours.dirs) == len(non_dirs) > 10
    for directory in ours.dirs:
        for f in directory.files:
            entry = by_path[f"{directory.path}/{f.name}" if directory.path else f.name]
            raw = entry.data if entry.type == "file" else entry.linkname.encode()
            assert f.digest == "Q1" + base64.b64encode(hashlib.sha1(raw).digest()).decode()
    # apk-tools recorded r22 of the same package in the fixture database; the file list
    # (directories, ACLs, digests) did not change in r23, so the blocks must be identical.
    recorded = next(
        p
        for p in parse_installed((APKO_TESTDATA / "root/usr/lib/apk/db/installed").read_bytes())
        if p.info.name == "alpine-baselayout"
    )
    assert recorded.info.version == "3.2.0-r22"
    assert ours.dirs == recorded.dirs
