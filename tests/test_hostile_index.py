"""Hostile indexes and installed databases: seeded mutations of real files give either a parsed
result or a ``NanodistroError`` — never KeyError, zlib.error, UnicodeDecodeError, IndexError...

Mutations are made at three depths so every layer is reached: the compressed file (gzip), the
inflated tar (re-compressed), and the APKINDEX text (re-packed into a valid container).
"""

from __future__ import annotations

import collections
import random
from collections.abc import Callable

import pytest

from fixture_paths import THIRD_PARTY
from nanodistro.errors import NanodistroError
from nanodistro.formats.apkindex import read_index
from nanodistro.formats.installed_db import format_installed, parse_installed, parse_triggers
from nanodistro.formats.tarball import TarEntry, gzip_member, gzip_members, read_tar, write_tar

SEED = 20261127
APKO = THIRD_PARTY / "chainguard-dev+apko/pkg/apk/apk/testdata"
INDEX_FIXTURES = [
    APKO / "signing/APKINDEX.tar.gz",
    APKO / "rsa256-signed/APKINDEX.tar.gz",
    APKO / "APKINDEX.tar.gz",
    THIRD_PARTY / "chainguard-dev+apko/internal/cli/testdata/packages/x86_64/APKINDEX.tar.gz",
    THIRD_PARTY / "wolfi-dev+wolfictl/pkg/dag/testdata/packages/x86_64/APKINDEX.tar.gz",
]
DB_FIXTURES = [
    APKO / "root/usr/lib/apk/db/installed",
    APKO / "installed/wolfi-base",
    APKO / "installed/bad-top-level-perms",
]
KEYRING = {
    p.name: p.read_bytes()
    for p in sorted(THIRD_PARTY.rglob("*.rsa.pub"))
    if not p.name.startswith(".SIGN.")
}
TOKENS = [b"\n", b"\n\n", b":", b"\x00", b"\xff", b"[", b"]", b"P:", b"V:", b"S:-1", b"F:", b"R:",
          b"M:0:0:9", b"a:x", b"Z:", b"C:Q1", b"9" * 30, b"\xc3", b"\r\n", b" "]  # fmt: skip


def mutate(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not buf:
            buf.extend(rng.choice(TOKENS))
            continue
        op = rng.randrange(7)
        pos = rng.randrange(len(buf))
        if op == 0:  # bit flip
            buf[pos] ^= 1 << rng.randrange(8)
        elif op == 1:  # random byte
            buf[pos] = rng.randrange(256)
        elif op == 2:  # delete a run
            del buf[pos : pos + rng.randint(1, 64)]
        elif op == 3:  # insert a token
            buf[pos:pos] = rng.choice(TOKENS)
        elif op == 4:  # truncate
            del buf[pos:]
        elif op == 5:  # duplicate a run
            end = min(len(buf), pos + rng.randint(1, 200))
            buf[pos:pos] = buf[pos:end]
        else:  # swap two runs
            other = rng.randrange(len(buf))
            a, b = sorted((pos, other))
            width = rng.randint(1, 32)
            buf[a : a + width], buf[b : b + width] = buf[b : b + width], buf[a : a + width]
    return bytes(buf)


def check(fn: Callable[[], object], kinds: collections.Counter[str], label: str) -> None:
    try:
        fn()
    except NanodistroError as error:
        assert str(error), "errors carry a message"
        kinds[type(error).__name__] += 1
    except Exception as error:  # pragma: no cover - the failure this test exists to catch
        raise AssertionError(f"{label}: raw {type(error).__name__}: {error}") from error
    else:
        kinds["ok"] += 1


def index_layers(data: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """(signature member, index member, inflated index tar, APKINDEX text) of a real file."""
    members = gzip_members(data, where="fixture")
    signature = members[0].raw if len(members) > 1 else b""
    tar = members[-1].inflated
    text = next(e.data for e in read_tar(tar, where="fixture") if e.path == "APKINDEX")
    return signature, members[-1].raw, tar, text


@pytest.mark.parametrize("path", INDEX_FIXTURES, ids=lambda p: p.parent.name)
def test_mutated_indexes_give_only_nanodistro_errors(path):
    rng = random.Random(f"{SEED}:{path.name}:{path.parent.name}")
    data = path.read_bytes()
    signature, _member, tar, text = index_layers(data)
    kinds: collections.Counter[str] = collections.Counter()
    for i in range(400):
        label = f"{path.parent.name} mutant {i}"
        whole = mutate(data, rng)
        check(lambda w=whole: read_index(w, where="m", keyring=None), kinds, label)
        check(lambda w=whole: read_index(w, where="m", keyring=KEYRING), kinds, label)
        repacked_tar = signature + gzip_member(mutate(tar, rng), level=1)
        check(lambda r=repacked_tar: read_index(r, where="m", keyring=None), kinds, label)
        new_text = mutate(text, rng)
        container = gzip_member(write_tar([TarEntry("APKINDEX", data=new_text)]), level=1)
        check(lambda c=container: read_index(c, where="m", keyring=None), kinds, label)
    # the mutations reach every layer: some parse, some fail in gzip, tar, text or signature
    assert kinds["ok"] > 100
    assert kinds["FormatError"] > 100
    if signature:
        assert kinds["BadSignatureError"] + kinds["UntrustedSignatureError"] > 0


@pytest.mark.parametrize("path", DB_FIXTURES, ids=lambda p: p.name)
def test_mutated_installed_databases_give_only_nanodistro_errors(path):
    rng = random.Random(f"{SEED}:{path.name}")
    data = path.read_bytes()
    kinds: collections.Counter[str] = collections.Counter()
    for i in range(1500):
        mutant = mutate(data, rng)

        def round_trip(mutant: bytes = mutant) -> None:
            packages = parse_installed(mutant, where="installed")
            # whatever parses must also write and parse back to the same records
            assert parse_installed(format_installed(packages)) == packages

        check(round_trip, kinds, f"{path.name} mutant {i}")
        check(lambda m=mutant: parse_triggers(m), kinds, f"{path.name} triggers {i}")
    assert kinds["ok"] > 100
    assert kinds["FormatError"] > 100
