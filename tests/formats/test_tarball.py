"""Tar/gzip codec: determinism, interop with GNU tar and Python tarfile, safe extraction."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import socket
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from gzip_bomb import MIB, tar_header, write_gzip_bomb
from nanodistro.errors import ConfigError, FormatError, UnsafePathError
from nanodistro.formats import gzipstream
from nanodistro.formats.inflate import (
    ARCHIVE_LIMIT,
    BUDGET_ENV,
    COMMAND_LIMIT,
    command_budget,
    decompression_budget,
    open_tar,
)
from nanodistro.formats.tarball import (
    TarEntry,
    entries_from_directory,
    extract,
    gunzip,
    gzip_member,
    gzip_members,
    read_tar,
    sort_key,
    split_gzip_members,
    write_tar,
)

LONG = "usr/share/" + "/".join(["d" * 60] * 5) + "/file.txt"  # > 255 bytes: needs PAX path


def sample_entries() -> list[TarEntry]:
    return [
        TarEntry("usr", "dir", mode=0o755, mtime=1700000000),
        TarEntry("usr/bin", "dir", mode=0o755, mtime=1700000000),
        TarEntry("usr/bin/tool", "file", mode=0o755, mtime=1700000000, data=b"#!/bin/sh\n"),
        TarEntry("usr/bin/alias", "symlink", mode=0o777, linkname="tool", mtime=1700000000),
        TarEntry("usr/bin/hard", "hardlink", linkname="usr/bin/tool", mtime=1700000000),
        TarEntry("usr/bin/fifo", "fifo", mode=0o600, mtime=1700000000),
        TarEntry("dev/null", "chr", mode=0o666, devmajor=1, devminor=3),
        TarEntry(LONG, "file", data=b"x" * 1000, uid=1000, gid=1000, uname="a", gname="b"),
        TarEntry("usr/share/naïve.txt", "file", data=b"utf8 name"),
        TarEntry("usr/cap", "file", data=b"c", xattrs={"security.capability": b"\x01\x00\xff"}),
    ]


def test_round_trip_all_types() -> None:
    entries = sample_entries()
    data = write_tar(entries, end_of_archive=True, apk_checksums=True)
    assert len(data) % 512 == 0 and data.endswith(b"\0" * 1024)
    back = read_tar(data, where="t.tar")
    assert [e.path for e in back] == [e.path for e in entries]
    for original, read in zip(entries, back, strict=True):
        assert read.type == original.type
        assert read.data == original.data
        assert read.linkname == original.linkname
        assert read.mode == original.mode
        assert (read.uid, read.gid, read.uname, read.gname) == (
            original.uid,
            original.gid,
            original.uname,
            original.gname,
        )
        assert read.xattrs == original.xattrs
        assert read.pax_checksum == original.content_sha1()
    # deterministic and stable through a second round trip
    assert write_tar(back, end_of_archive=True, apk_checksums=True) == data


def test_python_tarfile_reads_our_output() -> None:
    data = write_tar(sample_entries(), end_of_archive=True, apk_checksums=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        members = archive.getmembers()
        names = [m.name for m in members]
        assert LONG in names and "usr/share/naïve.txt" in names
        tool = archive.getmember("usr/bin/tool")
        assert (
            tool.pax_headers["APK-TOOLS.checksum.SHA1"] == hashlib.sha1(b"#!/bin/sh\n").hexdigest()
        )
        assert tool.mtime == 1700000000 and "mtime" not in tool.pax_headers
        alias = archive.getmember("usr/bin/alias")
        assert alias.pax_headers["APK-TOOLS.checksum.SHA1"] == hashlib.sha1(b"tool").hexdigest()
        assert "APK-TOOLS.checksum.SHA1" not in archive.getmember("usr/bin").pax_headers


def test_no_end_of_archive_and_concatenation() -> None:
    one = write_tar([TarEntry(".PKGINFO", data=b"a")], end_of_archive=False)
    two = write_tar([TarEntry("etc/x", data=b"b")], end_of_archive=True)
    assert not one.endswith(b"\0" * 512)
    assert [e.path for e in read_tar(one + two, where="x")] == [".PKGINFO", "etc/x"]


@pytest.mark.parametrize("fmt", ["gnu", "posix", "ustar", "v7"])
def test_reads_gnu_tar_output(tmp_path: Path, fmt: str) -> None:
    root = tmp_path / "root"
    (root / "a" / ("long" * 20) / ("deep" * 20)).mkdir(parents=True)
    (root / "a" / "f").write_bytes(b"content")
    (root / "a" / "l").symlink_to("f")
    os.link(root / "a" / "f", root / "a" / "h")
    out = subprocess.run(
        ["tar", "-C", str(root), f"--format={fmt}", "-cf", "-", "a"],
        check=False,
        capture_output=True,
    )
    if fmt == "v7":
        # v7 has no ustar magic: apk-tools refuses it, so do we.
        with pytest.raises(FormatError, match="magic"):
            read_tar(out.stdout, where="v7.tar")
        return
    assert out.returncode == 0, out.stderr
    entries = {e.path: e for e in read_tar(out.stdout, where="gnu.tar")}
    first, second = sorted([entries["a/f"], entries["a/h"]], key=lambda e: e.type != "file")
    assert first.type == "file" and first.data == b"content"
    assert second.type == "hardlink" and second.linkname == first.path
    assert entries["a/l"].type == "symlink" and entries["a/l"].linkname == "f"
    assert f"a/{'long' * 20}/{'deep' * 20}" in entries


def test_sort_key_is_go_walkdir_order() -> None:
    paths = ["a-b", "a/x", "a", "b", "a/x/y", "a.c"]
    assert sorted(paths, key=sort_key) == ["a", "a/x", "a/x/y", "a-b", "a.c", "b"]


def test_gzip_member_is_deterministic_and_split() -> None:
    first, second = gzip_member(b"one"), gzip_member(b"two" * 1000)
    assert first == gzip_member(b"one")
    assert first[4:8] == b"\0\0\0\0" and not first[3] & 0x08  # MTIME 0, no FNAME
    members = gzip_members(first + second, where="x")
    assert [m.inflated for m in members] == [b"one", b"two" * 1000]
    assert members[1].offset == len(first) and members[1].end == len(first + second) - 1
    assert split_gzip_members(first + second, "x") == [first, second]
    assert gzip.decompress(first + second) == b"one" + b"two" * 1000


def test_gzip_errors_name_the_file() -> None:
    member = gzip_member(b"payload" * 100)
    with pytest.raises(FormatError, match=r"^f\.gz: .*truncated"):
        gzip_members(member[:-12], where="f.gz")
    with pytest.raises(FormatError, match=r"f\.gz: .*corrupt"):
        gzip_members(member[:10] + b"\xff" * 20 + member[30:], where="f.gz")
    with pytest.raises(FormatError, match="expected a gzip member"):
        gzip_members(member + b"garbage", where="f.gz")
    with pytest.raises(FormatError, match="exceeds the budget of"):
        gzip_members(gzip_member(b"\0" * 10_000_000), where="bomb.gz", max_inflated=1_000_000)
    assert gzip_members(member + b"\0" * 100, where="padded.gz")[0].inflated == b"payload" * 100


def test_entries_from_directory(tmp_path: Path) -> None:
    root = tmp_path / "pkg"
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / "tool").write_bytes(b"tool")
    (root / "usr" / "bin" / "tool").chmod(0o755)
    os.link(root / "usr" / "bin" / "tool", root / "usr" / "bin" / "tool2")
    (root / "usr" / "bin" / "link").symlink_to("tool")
    (root / "a-b").write_text("x")
    os.mkfifo(root / "fifo")
    entries = entries_from_directory(root, mtime=42)
    assert [e.path for e in entries] == [
        "a-b",
        "fifo",
        "usr",
        "usr/bin",
        "usr/bin/link",
        "usr/bin/tool",
        "usr/bin/tool2",
    ]
    by_path = {e.path: e for e in entries}
    assert by_path["usr/bin/tool2"].type == "hardlink"
    assert by_path["usr/bin/tool2"].linkname == "usr/bin/tool"
    assert by_path["usr/bin/tool"].mode == 0o755
    assert all(e.mtime == 42 and e.uid == 0 and e.uname == "root" for e in entries)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "sock"))
    try:
        with pytest.raises(FormatError, match="sockets"):
            entries_from_directory(root, mtime=0)
    finally:
        sock.close()


def test_extract_writes_everything(tmp_path: Path) -> None:
    dest = tmp_path / "root"
    entries = [e for e in sample_entries() if e.type != "chr"]
    extract(entries, dest, where="t.tar")
    assert (dest / "usr/bin/tool").read_bytes() == b"#!/bin/sh\n"
    assert os.readlink(dest / "usr/bin/alias") == "tool"
    assert os.stat(dest / "usr/bin/hard").st_ino == os.stat(dest / "usr/bin/tool").st_ino
    assert (dest / "usr/bin/tool").stat().st_mode & 0o7777 == 0o755
    assert (dest / "usr/bin").stat().st_mtime == 1700000000
    assert (dest / LONG).read_bytes() == b"x" * 1000


def test_extract_follows_symlinks_inside_root(tmp_path: Path) -> None:
    dest = tmp_path / "root"
    extract(
        [
            TarEntry("usr/lib", "dir", mode=0o755),
            TarEntry("lib", "symlink", linkname="usr/lib"),
            TarEntry("lib64", "symlink", linkname="/usr/lib"),
            TarEntry("lib/libc.so", data=b"libc"),
            TarEntry("lib64/ld.so", data=b"ld"),
        ],
        dest,
        where="t.tar",
    )
    assert (dest / "usr/lib/libc.so").read_bytes() == b"libc"
    assert (dest / "usr/lib/ld.so").read_bytes() == b"ld"
    assert (dest / "lib").is_symlink()


UNSAFE = [
    ([TarEntry("../evil", data=b"x")], "'..'"),
    ([TarEntry("/etc/evil", data=b"x")], "absolute"),
    ([TarEntry("ok", data=b"x"), TarEntry("a/../../evil", data=b"x")], "'..'"),
    ([TarEntry("escape", "symlink", linkname="../../../etc")], "outside the root"),
    ([TarEntry("usr/x", "symlink", linkname="../../etc/passwd")], "outside the root"),
    ([TarEntry("abs", "symlink", linkname="/../etc")], "outside the root"),
    ([TarEntry("h", "hardlink", linkname="/etc/shadow")], "absolute"),
    ([TarEntry("h", "hardlink", linkname="../outside")], "'..'"),
    ([TarEntry("h", "hardlink", linkname="not-in-archive")], "earlier file"),
    ([TarEntry("dev/sda", "blk", devmajor=8, devminor=0)], "device node"),
    ([TarEntry("dev/mem", "chr", devmajor=1, devminor=1)], "device node"),
]


@pytest.mark.parametrize(("entries", "message"), UNSAFE)
def test_extract_refuses_unsafe_and_writes_nothing(
    tmp_path: Path, entries: list[TarEntry], message: str
) -> None:
    dest = tmp_path / "root"
    dest.mkdir()
    with pytest.raises(UnsafePathError, match=message) as info:
        extract([TarEntry("first", data=b"x"), *entries], dest, where="evil.apk")
    assert str(info.value).startswith("evil.apk: ")
    assert list(dest.iterdir()) == []
    assert not (tmp_path / "evil").exists() and not (tmp_path / "outside").exists()


def test_extract_refuses_existing_symlink_leaving_dest(tmp_path: Path) -> None:
    dest = tmp_path / "root"
    dest.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (dest / "link").symlink_to("../outside")
    with pytest.raises(UnsafePathError, match="outside the root"):
        extract([TarEntry("a", data=b"1"), TarEntry("link/pwned", data=b"x")], dest, where="e")
    assert list(outside.iterdir()) == []
    assert not (dest / "a").exists()
    # An absolute on-disk symlink is taken relative to dest, like a chroot would.
    (dest / "abs").symlink_to(str(outside))
    extract([TarEntry("abs/inside", data=b"x")], dest, where="e")
    assert list(outside.iterdir()) == []
    assert (dest / str(outside).lstrip("/") / "inside").read_bytes() == b"x"


def test_extract_replaces_symlink_instead_of_writing_through(tmp_path: Path) -> None:
    dest = tmp_path / "root"
    dest.mkdir()
    target = tmp_path / "victim"
    target.write_text("keep")
    (dest / "file").symlink_to(str(target))
    extract([TarEntry("file", data=b"new")], dest, where="e")
    assert target.read_text() == "keep"
    assert (dest / "file").read_bytes() == b"new" and not (dest / "file").is_symlink()


def test_extract_devices_allowed_only_when_asked(tmp_path: Path) -> None:
    entry = TarEntry("fifo", "fifo")
    extract([entry], tmp_path / "r", where="e")
    assert stat.S_ISFIFO((tmp_path / "r" / "fifo").lstat().st_mode)  # a fifo is no device
    for kind in ("chr", "blk"):
        with pytest.raises(UnsafePathError, match=rf"^e: device node 'dev' \({kind} 0:0\) is not"):
            extract([TarEntry("dev", kind)], tmp_path / "r", where="e")
        assert not (tmp_path / "r" / "dev").exists()


def test_header_claiming_huge_size_is_reported() -> None:
    data = bytearray(write_tar([TarEntry("big", data=b"x" * 10)], end_of_archive=True))
    header = bytearray(data[:512])
    header[124:136] = b"\x80" + (10 * 1024**3).to_bytes(11, "big")  # GNU base-256
    header[148:156] = b" " * 8
    header[148:156] = f"{sum(header):06o}".encode() + b"\0 "
    with pytest.raises(FormatError, match=r"big\.tar: entry 'big' claims 10737418240 bytes"):
        read_tar(bytes(header) + bytes(data[512:]), where="big.tar")


def test_bad_header_checksum_and_magic() -> None:
    data = bytearray(write_tar([TarEntry("f", data=b"x")], end_of_archive=True))
    data[0] = ord("g")
    with pytest.raises(FormatError, match="checksum mismatch"):
        read_tar(bytes(data), where="x")
    with pytest.raises(FormatError, match="truncated tar header"):
        read_tar(
            write_tar([TarEntry("f", data=b"x")], end_of_archive=False)[:-10] + b"\1" * 100,
            where="x",
        )


def test_pax_overflow_fields_round_trip() -> None:
    entry = TarEntry("f", data=b"x", uid=2**40, gid=3, uname="u" * 40, gname="g" * 33, mtime=2**40)
    (back,) = read_tar(write_tar([entry]), where="x")
    assert (back.uid, back.gid, back.uname, back.gname, back.mtime) == (
        2**40,
        3,
        "u" * 40,
        "g" * 33,
        2**40,
    )


def test_extract_refuses_replacing_directory_before_writing(tmp_path: Path) -> None:
    dest = tmp_path / "root"
    (dest / "etc").mkdir(parents=True)
    with pytest.raises(FormatError, match="would replace a directory"):
        extract([TarEntry("new", data=b"1"), TarEntry("etc", data=b"x")], dest, where="e")
    assert sorted(p.name for p in dest.iterdir()) == ["etc"]


def test_large_multi_member_stream_is_split_quickly() -> None:
    big = gzip_member(b"a" * 50_000_000, level=1) + gzip_member(os.urandom(3_000_000), level=1)
    members = gzip_members(big, where="big")
    assert [len(m.inflated) for m in members] == [50_000_000, 3_000_000]
    assert members[0].raw + members[1].raw == big


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")
def test_entries_from_directory_keeps_mapped_owners(tmp_path: Path) -> None:
    (tmp_path / "built").write_text("x")
    (tmp_path / "daemon").write_text("y")
    os.chown(tmp_path / "built", 1000, 1000)
    os.chown(tmp_path / "daemon", 1234, 1235)
    entries = entries_from_directory(
        tmp_path, mtime=0, keep_owners=True, id_map={1000: 0}, user_names={1234: "svc"}
    )
    owners = {e.path: (e.uid, e.gid, e.uname, e.gname) for e in entries}
    assert owners == {"built": (0, 0, "root", "root"), "daemon": (1234, 1235, "svc", "")}


def test_dot_slash_archives_from_gnu_tar(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "a").write_bytes(b"a")
    os.link(root / "bin" / "a", root / "bin" / "b")
    out = subprocess.run(
        ["tar", "-C", str(root), "--sort=name", "-cf", "-", "."], check=True, capture_output=True
    )
    entries = read_tar(out.stdout, where="dot.tar")
    assert [e.path for e in entries] == [".", "bin", "bin/a", "bin/b"]
    assert entries[3].type == "hardlink" and entries[3].linkname == "bin/a"
    extract(entries, tmp_path / "out", where="dot.tar")
    assert (tmp_path / "out/bin/b").read_bytes() == b"a"


# ------------------------------------------------------------------ decompression budgets


def test_reads_of_one_command_share_its_budget() -> None:
    member = gzip_member(b"\0" * (3 * MIB))
    with decompression_budget(total=5 * MIB) as budget:
        assert gzip_members(member, where="first.gz")[0].inflated == b"\0" * (3 * MIB)
        with pytest.raises(
            FormatError,
            match=re.escape(
                f"second.gz: decompressed size exceeds the budget of {5 * MIB} bytes "
                "(all decompression of this command)"
            ),
        ):
            gzip_members(member, where="second.gz")
        assert budget.used > 5 * MIB
    # Outside the scope, a read has only its own bound.
    assert len(gzip_members(member, where="third.gz")[0].inflated) == 3 * MIB


def test_highly_compressible_member_within_the_limit_still_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Past the hold limit the read only counts, then inflates again once the total fits.
    monkeypatch.setattr(gzipstream, "HOLD_FLOOR", MIB)
    payload = b"head" + b"\0" * (10 * MIB) + b"tail"
    data = gzip_member(b"first") + gzip_member(payload) + gzip_member(b"last")
    assert len(data) < MIB // 32  # so the hold limit is the 1 MiB floor
    members = gzip_members(data, where="sparse.gz")
    assert [m.inflated for m in members] == [b"first", payload, b"last"]
    assert gunzip(data, where="sparse.gz") == b"first" + payload + b"last"


def test_budget_size_from_the_environment() -> None:
    with command_budget({BUDGET_ENV: "2M"}) as budget:
        assert budget.total == 2 * MIB
        with pytest.raises(FormatError, match="all decompression of this command"):
            gzip_members(gzip_member(b"\0" * (3 * MIB)), where="x.gz")
    with command_budget({}) as budget:
        assert budget.total == COMMAND_LIMIT
    with (
        pytest.raises(ConfigError, match="expected a size in bytes"),
        command_budget({BUDGET_ENV: "lots"}),
    ):
        pass


@pytest.mark.parametrize("compression", ["gz", "bz2", "xz"])
def test_open_tar_bounds_each_archive(tmp_path: Path, compression: str) -> None:
    archive = tmp_path / f"src.tar.{compression}"
    with tarfile.open(archive, f"w:{compression}") as tar:
        for name in ("a", "b"):
            info = tarfile.TarInfo(f"src/{name}")
            info.size = 2 * MIB
            tar.addfile(info, io.BytesIO(b"\0" * info.size))
    with open_tar(archive, where="src.tar") as tar:
        assert [m.name for m in tar.getmembers()] == ["src/a", "src/b"]
    with (
        pytest.raises(
            FormatError,
            match=re.escape(
                f"src.tar: decompressed size exceeds the budget of {3 * MIB} bytes (one archive)"
            ),
        ),
        open_tar(archive, where="src.tar", limit=3 * MIB) as tar,
    ):
        tar.getmembers()


def test_open_tar_refuses_a_bomb_before_inflating_it(tmp_path: Path) -> None:
    """A 16 MB tar.gz claiming one 16 GiB member: the seek past it is charged before it runs."""
    archive = tmp_path / "bomb.tar.gz"
    with archive.open("wb") as out:
        write_gzip_bomb(out, zeros=16 * 1024**3, prefix=tar_header("src/zeros", 16 * 1024**3))
    with (
        pytest.raises(FormatError, match=re.escape(f"exceeds the budget of {ARCHIVE_LIMIT} bytes")),
        open_tar(archive, where="bomb.tar.gz") as tar,
    ):
        tar.getmembers()


def test_open_tar_reports_corrupt_compressed_data(tmp_path: Path) -> None:
    archive = tmp_path / "broken.tar.gz"
    info = tarfile.TarInfo("src/noise")
    info.size = 100_000
    whole = io.BytesIO()
    with tarfile.open(fileobj=whole, mode="w:gz") as tar:
        tar.addfile(info, io.BytesIO(os.urandom(info.size)))
    archive.write_bytes(whole.getvalue()[:-5000])
    with (
        pytest.raises(FormatError, match=r"broken\.tar\.gz: corrupt or truncated"),
        open_tar(archive, where="broken.tar.gz") as tar,
    ):
        tar.getmembers()
