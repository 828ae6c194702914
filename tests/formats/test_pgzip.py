"""Deterministic parallel gzip (formats/pgzip.py): same bytes on any thread count, valid gzip.

Also the APK data stream written with it: byte-identical packages at 1 and 2 threads that our
reader and both apk-tools clients accept.
"""

from __future__ import annotations

import gzip
import hashlib
import random
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from apk_reference import apk_clients
from nanodistro.errors import ConfigError
from nanodistro.formats import pgzip
from nanodistro.formats.apk import read_apk, verify_apk_bytes, write_apk
from nanodistro.formats.apkindex import write_index
from nanodistro.formats.pkginfo import PackageInfo
from nanodistro.formats.signature import SigningKey
from nanodistro.formats.tarball import TarEntry, gunzip, gzip_member
from needs_tools import require_tools
from signing_keys import make_key

BUILD_DATE = 1_700_000_000


def _mixed(size: int, seed: int = 1) -> bytes:
    """Half incompressible (like binaries), half repetitive text, as a layer holds."""
    rng = random.Random(seed)
    words = [b"alpha ", b"beta ", b"gamma ", b"delta ", b"epsilon "]
    text = b"".join(rng.choice(words) for _ in range(size // 6))
    return (rng.randbytes(size // 2) + text)[:size]


@pytest.mark.parametrize("level", [1, 6, 9])
def test_bytes_do_not_depend_on_the_thread_count(level: int) -> None:
    data = _mixed(7 * pgzip.BLOCK + 12_345)  # 8 blocks, the last one short
    one = pgzip.compress(data, level=level, threads=1)
    assert pgzip.compress(data, level=level, threads=2) == one
    assert pgzip.compress(data, level=level, threads=4) == one
    assert pgzip.compress(data, level=level, threads=64) == one  # more threads than blocks


def test_output_is_one_valid_gzip_member(tmp_path: Path) -> None:
    require_tools("gzip")
    data = _mixed(5 * pgzip.BLOCK + 1)
    gz = pgzip.compress(data, level=1, threads=2)
    # fixed header: deflate, no flags (no FNAME), MTIME 0, XFL for level 1, OS 3 (as zlib)
    assert gz[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\x03"
    assert gz[-8:] == struct.pack("<II", zlib.crc32(data), len(data))
    assert gzip.decompress(gz) == data
    decomp = zlib.decompressobj(31)
    assert decomp.decompress(gz) == data and decomp.eof and decomp.unused_data == b""
    assert gunzip(gz, where="t.gz") == data  # one member: our multi-member reader agrees
    path = tmp_path / "t.gz"
    path.write_bytes(gz)
    subprocess.run(["gzip", "-t", str(path)], check=True)
    unpacked = subprocess.run(["gzip", "-dc", str(path)], check=True, capture_output=True)
    assert unpacked.stdout == data


@pytest.mark.parametrize("size", [0, 1, 100, pgzip.BLOCK - 1, pgzip.BLOCK])
def test_one_block_is_what_a_single_stream_writer_gives(size: int) -> None:
    """Up to one block there is no dictionary: the bytes of gzip.compress(mtime=0)."""
    data = _mixed(size, seed=size)
    for level in (1, 6, 9):
        assert pgzip.compress(data, level=level) == gzip.compress(data, level, mtime=0)


def test_blocks_carry_the_previous_window_as_dictionary() -> None:
    """Repeats across a block boundary still compress: the previous 32 KiB primes each block."""
    chunk = random.Random(3).randbytes(16 * 1024)
    data = chunk * (4 * pgzip.BLOCK // len(chunk))
    gz = pgzip.compress(data, level=6, threads=2)
    assert len(gz) < len(chunk) + 4096
    assert gzip.decompress(gz) == data


def test_digests_are_of_the_bytes() -> None:
    data = _mixed(3 * pgzip.BLOCK + 7)
    result = pgzip.compress_hashed(data, level=1, threads=2)
    assert result.input_sha256 == hashlib.sha256(data).hexdigest()
    assert result.gz_sha256 == hashlib.sha256(result.gz).hexdigest()


def test_block_size_is_part_of_the_identity() -> None:
    data = _mixed(4 * pgzip.BLOCK)
    smaller = pgzip.compress(data, level=1, block=pgzip.BLOCK // 2)
    assert smaller != pgzip.compress(data, level=1)
    assert gzip.decompress(smaller) == data


def test_thread_count_from_the_environment() -> None:
    assert pgzip.default_threads({"NANODISTRO_THREADS": "3"}) == 3
    assert pgzip.default_threads({}) >= 1
    for bad in ("0", "-2", "many"):
        with pytest.raises(ConfigError) as info:
            pgzip.default_threads({"NANODISTRO_THREADS": bad})
        assert str(info.value).startswith("NANODISTRO_THREADS: expected a positive number")


def _package(key: SigningKey, threads: int) -> bytes:
    entries = [
        TarEntry("usr", "dir", mode=0o755, mtime=BUILD_DATE),
        TarEntry("usr/lib", "dir", mode=0o755, mtime=BUILD_DATE),
        TarEntry("usr/lib/big.bin", "file", mode=0o644, mtime=BUILD_DATE, data=BIG),
    ]
    info = PackageInfo(name="big", version="1.0-r0", arch="x86_64", license="MIT")
    return write_apk(info, entries, key=key, source_date_epoch=BUILD_DATE, threads=threads)


BIG = _mixed(600_000)


def test_package_is_byte_identical_at_one_and_two_threads(tmp_path: Path) -> None:
    key, keyring = make_key(tmp_path / "keys", "big")
    one = _package(key, threads=1)
    assert _package(key, threads=2) == one
    assert _package(key, threads=4) == one
    package, _ = verify_apk_bytes(one, keyring, where="big.apk")
    assert package.datahash_ok is True
    assert len(package.data.raw) > 2 * pgzip.BLOCK  # the data member spans several blocks
    decomp = zlib.decompressobj(31)  # one gzip member, as apk-tools expects the data segment
    decomp.decompress(package.data.raw)
    assert decomp.eof and decomp.unused_data == b""
    assert {e.path: e.data for e in package.entries}["usr/lib/big.bin"] == BIG


def test_apk_tools_accept_a_multi_block_package(tmp_path: Path) -> None:
    key, _ = make_key(tmp_path / "private", "big")
    keys = tmp_path / "keys"
    keys.mkdir()
    shutil.copyfile(tmp_path / "private" / key.keyname, keys / key.keyname)
    data = _package(key, threads=2)
    repo = tmp_path / "repo"
    (repo / "x86_64").mkdir(parents=True)
    (repo / "x86_64" / "big-1.0-r0.apk").write_bytes(data)
    info = read_apk(data, where="big.apk").info
    index = write_index([info], key=key, source_date_epoch=BUILD_DATE)
    (repo / "x86_64" / "APKINDEX.tar.gz").write_bytes(index)
    for client in apk_clients():
        verified = client.run(
            "verify", "--keys-dir", str(keys), str(repo / "x86_64/big-1.0-r0.apk")
        )
        assert "OK" in verified.stdout, verified.stdout
        root = tmp_path / f"root-{client.name}"
        client.run(
            "--root", str(root), "--initdb", "--keys-dir", str(keys),
            "--repositories-file", "/dev/null", "--repository", str(repo),
            "--no-network", "--no-cache", "--arch", "x86_64", "add", "big=1.0-r0",
        )  # fmt: skip
        assert (root / "usr/lib/big.bin").read_bytes() == BIG


def test_every_gzip_member_we_write_uses_the_block_scheme() -> None:
    """APKINDEX, control and signature members too: same bytes on any thread count."""
    data = _mixed(3 * pgzip.BLOCK + 5)
    assert gzip_member(data) == pgzip.compress(data, level=9, threads=1)
    assert gzip_member(b"small", level=1) == gzip.compress(b"small", 1, mtime=0)
