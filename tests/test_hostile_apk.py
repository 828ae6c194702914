"""Hostile packages: mutated real files and hand-made attacks give clear NanodistroErrors only.

Mutations use a fixed seed so failures reproduce; every outcome must be a parsed package or a
``NanodistroError`` — never KeyError, zlib.error, UnicodeDecodeError, IndexError, ...
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from fixture_paths import THIRD_PARTY
from gzip_bomb import MIB, PEAK_RSS_LIMIT, run_measured, tar_header, write_gzip_bomb
from nanodistro.errors import ChecksumError, FormatError, NanodistroError, UnsafePathError
from nanodistro.formats.apk import read_apk, verify_apk, verify_apk_bytes
from nanodistro.formats.signature import (
    BadSignatureError,
    SigningKey,
    UntrustedSignatureError,
    signature_member,
)
from nanodistro.formats.tarball import (
    TarEntry,
    extract,
    gzip_member,
    gzip_members,
    validate_entries,
    write_tar,
)
from signing_keys import KeyAndKeyring, make_key

SEED = 20260601
FIXTURES = [
    "chainguard-dev+apko/internal/cli/testdata/packages/x86_64/pretend-baselayout-1.0.0-r0.apk",
    "alpinelinux+abuild/tests/testdata/alpine-base-3.12.0-r0.apk",
    "chainguard-dev+melange/pkg/sign/testdata/test.apk",
    "chainguard-dev+apko/pkg/apk/apk/testdata/replaces/replaces-0.0.1-r0.apk",
]
KEYRING = {p.name: p.read_bytes() for p in sorted(THIRD_PARTY.rglob("*.rsa.pub"))}


def outcome(data: bytes, where: str = "mutant.apk") -> str:
    """Read, verify and validate for extraction; return the error class name or 'ok'."""
    try:
        pkg = read_apk(data, where=where)
        # unsafe paths are reported; verification must still cope with the same entries
        with contextlib.suppress(UnsafePathError):
            validate_entries(pkg.entries, where)
        verify_apk(pkg, KEYRING)
    except NanodistroError as error:
        assert str(error), "errors must carry a message"
        return type(error).__name__
    return "ok"


def _mutate_raw(rng: random.Random, data: bytes) -> bytes:
    kind = rng.randrange(5)
    buf = bytearray(data)
    if kind == 0:  # bit flips
        for _ in range(rng.randint(1, 8)):
            pos = rng.randrange(len(buf))
            buf[pos] ^= 1 << rng.randrange(8)
    elif kind == 1:  # truncation
        del buf[rng.randrange(len(buf)) :]
    elif kind == 2:  # splice in random bytes
        pos = rng.randrange(len(buf))
        buf[pos:pos] = rng.randbytes(rng.randint(1, 64))
    elif kind == 3:  # delete a range
        start = rng.randrange(len(buf))
        del buf[start : start + rng.randint(1, 256)]
    else:  # copy one region over another
        start, dest = rng.randrange(len(buf)), rng.randrange(len(buf))
        chunk = buf[start : start + rng.randint(1, 512)]
        buf[dest : dest + len(chunk)] = chunk
    return bytes(buf)


def _mutate_structured(rng: random.Random, data: bytes) -> bytes:
    """Mutate the *inflated* tar of one member and re-gzip it, to reach the tar parser."""
    members = gzip_members(data, where="fixture")
    index = rng.randrange(len(members))
    tar = bytearray(members[index].inflated)
    if not tar:
        return data
    # Favour header bytes (first 512 of some block) over content.
    for _ in range(rng.randint(1, 6)):
        block = rng.randrange(max(1, len(tar) // 512))
        pos = min(
            len(tar) - 1,
            block * 512
            + rng.choice([0, 100, 124, 136, 148, 156, 157, 257, 345, rng.randrange(512)])
            + rng.randrange(12),
        )
        choice = rng.randrange(4)
        if choice == 0:
            tar[pos] ^= 1 << rng.randrange(8)
        elif choice == 1:
            tar[pos] = rng.choice(b"\0 /.0127x9LKg\xff")
        elif choice == 2:
            del tar[pos:]
            break
        else:
            tar[pos : pos + 8] = rng.choice(
                [b"../../..", b"/etc/pwn", b"77777777", b"\x80\xff\xff\xff\xff\xff\xff\xff"]
            )
    raw = [m.raw for m in members]
    raw[index] = gzip_member(bytes(tar), level=1)
    if rng.random() < 0.2:  # also reorder or duplicate members
        rng.shuffle(raw) if rng.random() < 0.5 else raw.insert(
            rng.randrange(len(raw)), rng.choice(raw)
        )
    return b"".join(raw)


def test_thousands_of_mutations_only_raise_nanodistro_errors() -> None:
    rng = random.Random(SEED)
    originals = [(THIRD_PARTY / name).read_bytes() for name in FIXTURES]
    seen: dict[str, int] = {}
    total = 0
    for round_ in range(6000):
        data = originals[round_ % len(originals)]
        mutant = _mutate_raw(rng, data) if round_ % 2 else _mutate_structured(rng, data)
        result = outcome(mutant)
        seen[result] = seen.get(result, 0) + 1
        total += 1
    assert total == 6000
    # The mutations reach every layer: gzip, tar, .PKGINFO, signature and checksums.
    assert seen.get("FormatError", 0) > 100
    assert seen.get("BadSignatureError", 0) + seen.get("ChecksumError", 0) > 50
    print(f"mutation outcomes: {dict(sorted(seen.items()))}")


# -- hand-made attacks -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> KeyAndKeyring:
    return make_key(tmp_path_factory.mktemp("keys"), "hostile")


def forge(data_tar: bytes, key: SigningKey, *, datahash: str | None = None) -> bytes:
    """A correctly signed package around an arbitrary (unvalidated) data tar."""
    data_member = gzip_member(data_tar)
    pkginfo = (
        "pkgname = evil\npkgver = 1-r0\narch = x86_64\n"
        f"datahash = {datahash or hashlib.sha256(data_member).hexdigest()}\n"
    )
    control = gzip_member(
        write_tar([TarEntry(".PKGINFO", data=pkginfo.encode())], end_of_archive=False)
    )
    return signature_member(key, control) + control + data_member


def test_truncated_gzip(key: tuple[SigningKey, dict[str, bytes]]) -> None:
    good = forge(write_tar([TarEntry("a", data=b"x" * 5000)]), key[0])
    with pytest.raises(FormatError, match=r"^pkg\.apk: gzip member at byte \d+ is truncated"):
        read_apk(good[:-30], where="pkg.apk")


def test_missing_signature(key: tuple[SigningKey, dict[str, bytes]]) -> None:
    good = forge(write_tar([TarEntry("a", data=b"x")]), key[0])
    unsigned = good[len(gzip_members(good, where="x")[0].raw) :]
    with pytest.raises(UntrustedSignatureError, match=r"^pkg\.apk: not signed"):
        verify_apk_bytes(unsigned, key[1], where="pkg.apk")


def test_bad_signature(key: tuple[SigningKey, dict[str, bytes]]) -> None:
    good = forge(write_tar([TarEntry("a", data=b"x")]), key[0])
    members = gzip_members(good, where="x")
    tar = bytearray(members[0].inflated)
    tar[600] ^= 0xFF  # inside the signature payload
    tampered = gzip_member(bytes(tar)) + b"".join(m.raw for m in members[1:])
    with pytest.raises(BadSignatureError, match=r"^pkg\.apk: BAD signature \.SIGN\.RSA256\."):
        verify_apk_bytes(tampered, key[1], where="pkg.apk")


def test_wrong_datahash(key: tuple[SigningKey, dict[str, bytes]]) -> None:
    data = forge(write_tar([TarEntry("a", data=b"x")]), key[0], datahash="0" * 64)
    pkg = read_apk(data, where="pkg.apk")
    assert pkg.datahash_ok is False
    with pytest.raises(
        ChecksumError,
        match=r"^pkg\.apk: data segment sha256 [0-9a-f]{64} does not match datahash 0{64}",
    ):
        verify_apk(pkg, key[1])


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([TarEntry("../../etc/cron.d/pwn", data=b"* * * * * root sh\n")], r"contains '\.\.'"),
        ([TarEntry("/etc/passwd", data=b"root::0:0::/:/bin/sh\n")], "is absolute"),
        ([TarEntry("usr/lib/x", "symlink", linkname="../../../../etc/shadow")], "points outside"),
        (
            [TarEntry("etc", "symlink", linkname="/"), TarEntry("etc/passwd", data=b"x")],
            None,  # allowed: '/' means the root being extracted into, handled below
        ),
        ([TarEntry("dev/kmem", "chr", devmajor=1, devminor=2)], "device node"),
        ([TarEntry("dev/sda", "blk", devmajor=8, devminor=0)], "device node"),
        ([TarEntry("usr/bin/su", "hardlink", linkname="../../etc/shadow")], r"'\.\.'"),
    ],
)
def test_unsafe_entries_are_refused_and_nothing_is_written(
    tmp_path: Path,
    key: tuple[SigningKey, dict[str, bytes]],
    entries: list[TarEntry],
    message: str | None,
) -> None:
    signing_key, keyring = key
    data = forge(write_tar([TarEntry("usr", "dir", mode=0o755), *entries]), signing_key)
    pkg, _ = verify_apk_bytes(data, keyring, where="evil-1-r0.apk")  # signed: trust is not safety
    dest = tmp_path / "root"
    dest.mkdir()
    if message is None:
        extract(pkg.entries, dest, where=pkg.where)
        assert (dest / "passwd").read_bytes() == b"x"  # stayed inside dest
        return
    with pytest.raises(UnsafePathError, match=message) as info:
        extract(pkg.entries, dest, where=pkg.where)
    assert str(info.value).startswith("evil-1-r0.apk: ")
    assert list(dest.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root"]


def test_absurd_size_in_header(key: tuple[SigningKey, dict[str, bytes]]) -> None:
    tar = bytearray(write_tar([TarEntry("big", data=b"x" * 100)]))
    tar[124:136] = b"\x80" + (10 * 1024**3).to_bytes(11, "big")  # 10 GB, GNU base-256
    tar[148:156] = b" " * 8
    tar[148:156] = f"{sum(tar[:512]):06o}".encode() + b"\0 "
    with pytest.raises(FormatError, match=r"^big\.apk: data: entry 'big' claims 10737418240 bytes"):
        read_apk(forge(bytes(tar), key[0]), where="big.apk")


def test_decompression_bomb_is_bounded(key: tuple[SigningKey, dict[str, bytes]]) -> None:
    bomb = forge(write_tar([TarEntry("zeros", data=b"\0" * 20_000_000)]), key[0])
    assert len(bomb) < 100_000
    with pytest.raises(FormatError, match="exceeds the budget of"):
        read_apk(bomb, where="bomb.apk", max_inflated=5_000_000)


def test_cli_reports_mutants_on_one_line(tmp_path: Path) -> None:
    rng = random.Random(SEED + 1)
    original = (THIRD_PARTY / FIXTURES[0]).read_bytes()
    for index in range(4):
        mutant = tmp_path / f"mutant{index}.apk"
        mutant.write_bytes(_mutate_raw(rng, original)[: len(original) - 100])
        result = subprocess.run(
            [sys.executable, "-m", "nanodistro", "apk", "info", str(mutant)],
            capture_output=True,
            text=True,
            check=False,
            env=os.environ,
        )
        assert result.returncode == 1, result.stdout
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {mutant}: "), result.stderr


def test_small_bomb_costs_little_memory_and_names_the_budget(tmp_path: Path) -> None:
    """A 4 MB package whose data inflates to 4 GiB of zeros: ``apk info`` refuses it at the
    1 GiB in-memory budget while holding no more than a few tens of MB."""
    control = gzip_member(
        write_tar(
            [TarEntry(".PKGINFO", data=b"pkgname = bomb\npkgver = 1-r0\narch = x86_64\n")],
            end_of_archive=False,
        )
    )
    bomb = tmp_path / "bomb.apk"
    with bomb.open("wb") as out:
        out.write(control)
        size = write_gzip_bomb(out, zeros=4 * 1024**3, prefix=tar_header("zeros", 4 * 1024**3))
    assert size < 5 * MIB
    status, stderr, peak = run_measured(
        "from nanodistro.cli import main\nmain(['apk', 'info', sys.argv[1]])", str(bomb)
    )
    assert status == 1
    assert stderr.strip() == (
        f"error: {bomb}: decompressed size exceeds the budget of {1024**3} bytes "
        "(one in-memory read)"
    )
    assert peak < PEAK_RSS_LIMIT, f"peak RSS {peak >> 20} MiB"
