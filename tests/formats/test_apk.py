"""APK v2 package codec against every real package in fixtures, plus write/read round trips."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from fixture_paths import THIRD_PARTY
from nanodistro.errors import ChecksumError, FormatError
from nanodistro.formats.apk import (
    identity,
    installed_size,
    read_apk,
    verify_apk,
    verify_apk_bytes,
    write_apk,
)
from nanodistro.formats.pkginfo import PackageInfo
from nanodistro.formats.signature import (
    BadSignatureError,
    SigningKey,
    UntrustedSignatureError,
)
from nanodistro.formats.tarball import TarEntry, gzip_members, read_tar, sort_key, write_tar
from signing_keys import KeyAndKeyring, make_key

VERIFY = json.loads((THIRD_PARTY / "VERIFY.json").read_text())
APKS = sorted(name for name in VERIFY if name.endswith(".apk"))
KEYRING = {p.name: p.read_bytes() for p in sorted(THIRD_PARTY.rglob("*.rsa.pub"))}
APKO_TESTDATA = THIRD_PARTY / "chainguard-dev+apko/internal/cli/testdata"


def verdict(data: bytes, where: str) -> str:
    """OK / UNTRUSTED / BAD, the words apk-tools 3 uses in VERIFY.json."""
    try:
        verify_apk_bytes(data, KEYRING, where=where)
    except UntrustedSignatureError:
        return "UNTRUSTED"
    except (BadSignatureError, ChecksumError):
        return "BAD"
    return "OK"


def test_verify_json_agreement(scoreboard: Callable[[str], None]) -> None:
    disagreements = []
    for name in APKS:
        expected = VERIFY[name]["apk3"].split()[0]
        got = verdict((THIRD_PARTY / name).read_bytes(), name)
        if got != expected:
            disagreements.append(f"{name}: ours {got}, apk-tools {expected}")
    line = f"VERIFY.json agreement (.apk): {len(APKS) - len(disagreements)}/{len(APKS)}"
    scoreboard(line)
    assert len(APKS) >= 50
    assert not disagreements, disagreements


@pytest.mark.parametrize("name", APKS)
def test_read_matches_inspection(name: str) -> None:
    data = (THIRD_PARTY / name).read_bytes()
    inspect = VERIFY[name]["inspect"]
    if "pkginfo" not in inspect:  # plain tarballs named .apk (wolfictl diff fixtures)
        with pytest.raises(FormatError, match=r"\.apk: control segment holds non-control"):
            read_apk(data, where=name)
        return
    pkg = read_apk(data, where=name)
    assert pkg.info.name == inspect["pkginfo"]["pkgname"]
    assert pkg.info.version == inspect["pkginfo"]["pkgver"]
    assert pkg.info.checksum == inspect["control_sha1_Q1"] == pkg.identity
    assert pkg.info.file_size == len(data)
    assert pkg.datahash_ok is inspect["data_sha256_matches_datahash"]
    assert len(pkg.entries) == inspect["data_entries"]
    assert sorted(pkg.control_files) == sorted(inspect["control_files"])
    assert [s.name for s in pkg.signatures] == inspect.get("signatures", [])
    assert len(gzip_members(data, where=name)) == inspect["gzip_members"]


def test_segments_match_apko_lock_file() -> None:
    lock = json.loads((APKO_TESTDATA / "apko.lock.json").read_text())
    checked = 0
    for package in lock["contents"]["packages"]:
        path = APKO_TESTDATA / package["url"].removeprefix("./testdata/")
        pkg = read_apk(path.read_bytes(), where=str(path))
        assert pkg.signature is not None
        assert pkg.signature.range == package["signature"]["range"]
        assert pkg.signature.checksum("sha1") == package["signature"]["checksum"]
        assert pkg.control.range == package["control"]["range"]
        assert pkg.control.checksum("sha1") == package["control"]["checksum"]
        assert pkg.data.range == package["data"]["range"]
        assert pkg.data.checksum("sha256") == package["data"]["checksum"]
        assert pkg.info.checksum == package["checksum"]
        checked += 1
    assert checked >= 2


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> KeyAndKeyring:
    return make_key(tmp_path_factory.mktemp("keys"))


def sample_package() -> tuple[PackageInfo, list[TarEntry]]:
    info = PackageInfo(
        name="hello",
        version="2.12-r0",
        arch="x86_64",
        description="the GNU hello world program",
        url="https://www.gnu.org/software/hello/",
        license="GPL-3.0-or-later",
        depends=["so:libc.so.6"],
        provides=["cmd:hello=2.12-r0"],
    )
    sde = 1700000000
    entries = [
        TarEntry("usr", "dir", mode=0o755, mtime=sde),
        TarEntry("usr/bin", "dir", mode=0o755, mtime=sde),
        TarEntry("usr/bin/hello", mode=0o755, mtime=sde, data=b"\x7fELF" + b"\0" * 100),
        TarEntry("usr/bin/hi", "hardlink", linkname="usr/bin/hello", mtime=sde),
        TarEntry("usr/bin/greet", "symlink", mode=0o777, linkname="hello", mtime=sde),
        TarEntry("usr/share", "dir", mode=0o755, mtime=sde),
        TarEntry("usr/share/hello.txt", mode=0o644, mtime=sde, data=b"hi\n"),
    ]
    return info, sorted(entries, key=sort_key)


def test_write_read_verify_round_trip(key: tuple[SigningKey, dict[str, bytes]]) -> None:
    signing_key, keyring = key
    info, entries = sample_package()
    scripts = {"post-install": b"#!/bin/sh\necho installed\n"}
    extra = {".melange.yaml": b"package:\n  name: hello\n"}
    data = write_apk(
        info,
        entries,
        key=signing_key,
        scripts=scripts,
        extra_control=extra,
        source_date_epoch=1700000000,
    )
    pkg = read_apk(data, where="hello-2.12-r0.apk")
    result = verify_apk(pkg, keyring)
    assert (result.keyname, result.algorithm, result.signed) == (
        signing_key.keyname,
        "RSA256",
        "control",
    )
    assert result.datahash_checked and result.files_checked == 3  # 2 files + 1 symlink
    assert [s.name for s in pkg.signatures] == [f".SIGN.RSA256.{signing_key.keyname}"]
    assert list(pkg.control_files) == [".PKGINFO", ".melange.yaml", ".post-install"]
    assert pkg.scripts == {".post-install": scripts["post-install"]}
    assert pkg.extra_control == extra
    for field in ("name", "version", "arch", "description", "url", "license", "depends"):
        assert getattr(pkg.info, field) == getattr(info, field)
    assert pkg.info.builddate == 1700000000
    assert pkg.info.installed_size == 107  # regular files only, hardlink counted once
    assert pkg.info.datahash == hashlib.sha256(pkg.data.raw).hexdigest()
    assert pkg.info.checksum == identity(pkg.control.raw)
    assert pkg.datahash_ok is True
    for original, read in zip(entries, pkg.entries, strict=True):
        assert (read.path, read.type, read.mode, read.data, read.linkname, read.mtime) == (
            original.path,
            original.type,
            original.mode,
            original.data,
            original.linkname,
            original.mtime,
        )
    # .PKGINFO is the first control entry and datahash its last line
    control = read_tar(gzip.decompress(pkg.control.raw), where="c")
    assert control[0].path == ".PKGINFO"
    assert control_files_modes(control) == {
        ".PKGINFO": 0o644,
        ".melange.yaml": 0o644,
        ".post-install": 0o755,
    }
    assert pkg.control_files[".PKGINFO"].decode().splitlines()[-1].startswith("datahash = ")
    # control and signature tars have no end-of-archive; data has exactly one
    assert not gzip.decompress(pkg.control.raw).endswith(b"\0" * 1024)
    assert gzip.decompress(pkg.data.raw).endswith(b"\0" * 1024)

    # write -> read -> write is byte-identical, and the output is reproducible
    again = write_apk(
        pkg.info,
        pkg.entries,
        key=signing_key,
        scripts=pkg.scripts,
        extra_control=pkg.extra_control,
        source_date_epoch=1700000000,
    )
    assert again == data
    assert write_apk(info, entries, key=signing_key, scripts=scripts, extra_control=extra,
                     source_date_epoch=1700000000) == data  # fmt: skip


def control_files_modes(entries: list[TarEntry]) -> dict[str, int]:
    return {entry.path: entry.mode for entry in entries}


def test_python_tarfile_reads_the_whole_package(key: tuple[SigningKey, dict[str, bytes]]) -> None:
    """The concatenated segments inflate to one valid tar stream (how apk-tools reads it)."""
    info, entries = sample_package()
    data = write_apk(info, entries, key=key[0], source_date_epoch=1700000000)
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as archive:
        names = archive.getnames()
    assert names[0] == f".SIGN.RSA256.{key[0].keyname}"
    assert names[1] == ".PKGINFO"
    assert "usr/bin/hello" in names


def test_resign_real_package_with_upstream_test_key() -> None:
    """Rebuilding apko's test package with its (public, test-only) key verifies with its .pub."""
    original = read_apk(
        (APKO_TESTDATA / "packages/x86_64/pretend-baselayout-1.0.0-r0.apk").read_bytes(),
        where="pretend-baselayout",
    )
    melange_key = SigningKey((APKO_TESTDATA / "melange.rsa").read_bytes(), "melange.rsa.pub")
    rebuilt = write_apk(
        original.info,
        original.entries,
        key=melange_key,
        extra_control=original.extra_control,
        source_date_epoch=0,
    )
    keyring = {"melange.rsa.pub": (APKO_TESTDATA / "melange.rsa.pub").read_bytes()}
    pkg, result = verify_apk_bytes(rebuilt, keyring, where="rebuilt")
    assert result.keyname == "melange.rsa.pub"
    assert [e.path for e in pkg.entries] == [e.path for e in original.entries]
    assert pkg.info.installed_size == sum(e.size for e in original.entries)


def test_unsigned_package_is_untrusted(key: tuple[SigningKey, dict[str, bytes]]) -> None:
    info, entries = sample_package()
    data = write_apk(info, entries, key=None, source_date_epoch=0)
    pkg = read_apk(data, where="u.apk")
    assert pkg.signature is None and pkg.control.offset == 0
    assert pkg.info.builddate is None
    with pytest.raises(UntrustedSignatureError, match=r"^u\.apk: not signed"):
        verify_apk(pkg, key[1])


def test_tampering_is_detected(key: tuple[SigningKey, dict[str, bytes]]) -> None:
    signing_key, keyring = key
    info, entries = sample_package()
    data = write_apk(info, entries, key=signing_key, source_date_epoch=0)
    pkg = read_apk(data, where="t.apk")
    # replace the data member with another valid one: datahash catches it
    other = write_apk(info, entries[:-1], key=None, source_date_epoch=0)
    other_pkg = read_apk(other, where="o.apk")
    swapped = data[: pkg.data.offset] + other_pkg.data.raw
    with pytest.raises(ChecksumError, match=r"^t\.apk: data segment sha256 .* datahash"):
        verify_apk_bytes(swapped, keyring, where="t.apk")
    # a different control member (other metadata): signature is BAD
    forged = data[: pkg.control.offset] + other_pkg.control.raw + pkg.data.raw
    with pytest.raises(BadSignatureError, match=r"^t\.apk: BAD signature \.SIGN\.RSA256\."):
        verify_apk_bytes(forged, keyring, where="t.apk")


def test_per_file_checksum_mismatch(key: tuple[SigningKey, dict[str, bytes]]) -> None:
    pkg = read_apk(write_apk(*sample_package(), key=key[0], source_date_epoch=0), where="p.apk")
    pkg.entries[2].pax_checksum = "0" * 40
    with pytest.raises(ChecksumError, match=r"APK-TOOLS\.checksum\.SHA1"):
        verify_apk(pkg, key[1])


def test_write_rejects_bad_input(key: tuple[SigningKey, dict[str, bytes]]) -> None:
    info, entries = sample_package()
    with pytest.raises(FormatError, match="unknown script"):
        write_apk(info, entries, key=None, source_date_epoch=0, scripts={"install": b""})
    with pytest.raises(FormatError, match=r"'\.\.'"):
        write_apk(info, [TarEntry("../x")], key=None, source_date_epoch=0)
    with pytest.raises(FormatError, match="arch is required"):
        write_apk(PackageInfo(name="a", version="1-r0"), [], key=None, source_date_epoch=0)


def test_installed_size_like_abuild() -> None:
    assert installed_size([]) == 0
    assert installed_size([TarEntry("d", "dir")]) == 1
    assert installed_size([], has_scripts=True) == 1
    assert installed_size([TarEntry("a", data=b"12"), TarEntry("b", "hardlink", linkname="a")]) == 2


def test_every_error_is_a_nanodistro_error(tmp_path: Path) -> None:
    cases = {
        b"": "x.apk: empty file, expected gzip data",
        b"not gzip": "x.apk: expected a gzip member at byte 0, found b'not '",
        gzip.compress(b"x" * 700): "x.apk: signature: not a ustar header at byte 0 (bad magic)",
    }
    for data, message in cases.items():
        with pytest.raises(FormatError) as info:
            read_apk(data, where="x.apk")
        assert str(info.value) == message


def test_tar_writer_reproduces_melange_segments_byte_for_byte() -> None:
    """Reading then re-writing the control and data tars of every melange-built fixture gives
    the exact bytes melange wrote (Go archive/tar layout, PaxHeaders.0 names, checksums)."""
    compared = 0
    for name in APKS:
        data = (THIRD_PARTY / name).read_bytes()
        if "pkginfo" not in VERIFY[name]["inspect"]:
            continue
        pkg = read_apk(data, where=name)
        if "abuild" in pkg.control_files[".PKGINFO"].decode().splitlines()[0]:
            continue  # GNU tar (atime/ctime PAX records), not reproduced on purpose
        control_tar = gzip.decompress(pkg.control.raw)
        assert write_tar(pkg.control_entries, end_of_archive=False) == control_tar, name
        data_tar = gzip.decompress(pkg.data.raw).rstrip(b"\0")
        rewritten = write_tar(pkg.entries, end_of_archive=True, apk_checksums=True)
        assert rewritten.rstrip(b"\0") == data_tar, name
        compared += 1
    assert compared >= 40
