"""APKINDEX text codec and APKINDEX.tar.gz container against the real indexes in fixtures."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from fixture_paths import THIRD_PARTY
from gzip_bomb import MIB, PEAK_RSS_LIMIT, run_measured, tar_header, write_gzip_bomb
from nanodistro.errors import FormatError, SignatureError
from nanodistro.formats.apkindex import (
    format_apkindex_text,
    package_identity,
    parse_apkindex_text,
    read_index,
    write_index,
)
from nanodistro.formats.pkginfo import PackageInfo
from nanodistro.formats.signature import SigningKey
from nanodistro.formats.tarball import gzip_members, read_tar

APKO = THIRD_PARTY / "chainguard-dev+apko/pkg/apk/apk/testdata"
VERIFY = json.loads((THIRD_PARTY / "VERIFY.json").read_text())
INDEXES = sorted(k for k in VERIFY if "APKINDEX.t" in k)
PLAIN_TEXTS = sorted(p for p in THIRD_PARTY.rglob("APKINDEX") if p.is_file())


def all_public_keys() -> dict[str, bytes]:
    return {
        p.name: p.read_bytes()
        for p in THIRD_PARTY.rglob("*.rsa.pub")
        if not p.name.startswith(".SIGN.")
    }


def record_key(info: PackageInfo) -> tuple[str, str, str]:
    return (info.name, info.version, info.checksum or "")


def index_text(path: Path) -> str:
    members = gzip_members(path.read_bytes(), where=str(path))
    entries = read_tar(members[-1].inflated, where=str(path))
    return next(e.data for e in entries if e.path == "APKINDEX").decode()


@pytest.fixture(scope="module")
def signing_key() -> SigningKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return SigningKey(pem, "test-key.rsa.pub")


@pytest.mark.parametrize(
    "name, count", [("alpine-316", 4929), ("alpine-317", 5004)], ids=["3.16", "3.17"]
)
def test_alpine_index_round_trips_field_for_field(name, count):
    text = index_text(APKO / name / "APKINDEX.tar.gz")
    packages = parse_apkindex_text(text)
    assert len(packages) == count
    written = format_apkindex_text(packages)
    assert written.endswith("\n\n") and not written.endswith("\n\n\n")
    again = parse_apkindex_text(written)
    assert sorted(again, key=record_key) == sorted(packages, key=record_key)
    # Written sorted by name (then version): the second write is identical.
    assert format_apkindex_text(again) == written
    names = [p.name for p in again]
    assert names == sorted(names)


def test_alpine_record_fields():
    packages = parse_apkindex_text(index_text(APKO / "alpine-317/APKINDEX.tar.gz"))
    nasm = next(p for p in packages if p.name == "nasm-doc")
    assert nasm.checksum == "Q1tduNGDYV/KwvztK0sMium7UfSj0="
    assert nasm.version == "2.15.05-r1"
    assert nasm.arch == "aarch64"
    assert nasm.file_size == 8948
    assert nasm.installed_size == 32768
    assert nasm.builddate == 1666619671
    assert nasm.install_if == ["docs", "nasm=2.15.05-r1"]
    # a description with a trailing space keeps it (field-for-field round trip)
    assert any(p.description.endswith(" ") for p in packages)


@pytest.mark.parametrize("path", PLAIN_TEXTS, ids=lambda p: str(p.relative_to(THIRD_PARTY)))
def test_plain_index_texts_round_trip(path):
    packages = parse_apkindex_text(path.read_text(), where=str(path))
    assert packages
    again = parse_apkindex_text(format_apkindex_text(packages))
    assert sorted(again, key=record_key) == sorted(packages, key=record_key)


def test_trailing_spaces_and_unknown_letters():
    text = "C:Q1x=\nP:a\nV:1-r0\nD:b  c \nz:lower\nX:upper\n\n\n\nP:b\nV:2\n"
    a, b = parse_apkindex_text(text)
    assert a.depends == ["b", "c"]
    assert a.extra == [("z", "lower"), ("X", "upper")]
    assert b.name == "b"
    assert "z:lower\nX:upper\n" in format_apkindex_text([a, b])


def test_writer_uses_apk_tools_letter_order():
    info = PackageInfo(
        name="x", version="1-r0", arch="x86_64", description="d", url="u", license="MIT",
        origin="x", maintainer="m", commit="c0", builddate=5, installed_size=3,
        provider_priority=10, depends=["so:libc.so.6"], provides=["cmd:x=1-r0"],
        install_if=["y"], checksum="Q1abc=", file_size=7,
    )  # fmt: skip
    letters = [line[0] for line in format_apkindex_text([info]).splitlines() if line]
    assert letters == list("CPVASITULomtckDpi")


def test_writer_sorts_by_apk_version():
    packages = [PackageInfo(name="a", version=v) for v in ("1.10-r0", "1.9-r0", "1.9-r1")]
    text = format_apkindex_text(packages)
    assert [p.version for p in parse_apkindex_text(text)] == ["1.9-r0", "1.9-r1", "1.10-r0"]


@pytest.mark.parametrize(
    "text, message, line",
    [
        ("P:a\nV:1\nS:x\n", "non-negative integer", 3),
        ("P:a\nV:1\nS:1_000\n", "non-negative integer", 3),
        ("P:a\nnot a field\n", "<letter>:<value>", 2),
        ("C:Q1x\nV:1\n\n", "no 'P:'", 1),
        ("P:a\nV:1\n\nP:b\n", "no 'V:'", 4),
    ],
)
def test_bad_text_names_line(text, message, line):
    with pytest.raises(FormatError, match=message) as info:
        parse_apkindex_text(text, where="APKINDEX")
    assert info.value.line == line


def test_newline_in_value_is_refused():
    with pytest.raises(FormatError, match="newline"):
        format_apkindex_text([PackageInfo(name="a", version="1", description="x\nP:evil")])


@pytest.mark.parametrize("rel", INDEXES)
def test_fixture_indexes_verify_as_reference_clients_did(rel):
    verdict = VERIFY[rel]
    data = (THIRD_PARTY / rel).read_bytes()
    unverified = read_index(data, where=rel, keyring=None)
    if "packages" in verdict["inspect"]:
        assert len(unverified.packages) == verdict["inspect"]["packages"]
    if verdict["apk2"].endswith("OK"):
        index = read_index(data, where=rel, keyring=all_public_keys())
        expected = {
            s.split(".SIGN.", 1)[-1].split(".", 1)[1] for s in verdict["inspect"]["signatures"]
        }
        assert index.verified_by in expected
        assert index.packages == unverified.packages
    else:
        with pytest.raises(SignatureError, match=rf"^{re.escape(rel)}: .*(not signed|UNTRUSTED)"):
            read_index(data, where=rel, keyring=all_public_keys())


def _index_verdict(rel: str) -> str:
    data = (THIRD_PARTY / rel).read_bytes()
    try:
        read_index(data, where=rel, keyring=all_public_keys())
    except SignatureError:
        return "refused"
    return "OK"


def test_fixture_sets_are_present() -> None:
    # the parametrized tests over these lists pass vacuously when a glob matches nothing
    assert len(INDEXES) >= 16
    assert len(PLAIN_TEXTS) >= 6
    assert len(all_public_keys()) >= 29


def test_index_verify_json_agreement(scoreboard: Callable[[str], None]) -> None:
    agree = [
        rel
        for rel in INDEXES
        if _index_verdict(rel) == ("OK" if VERIFY[rel]["apk2"].endswith("OK") else "refused")
    ]
    scoreboard(f"VERIFY.json agreement (APKINDEX): {len(agree)}/{len(INDEXES)}")
    assert len(agree) == len(INDEXES)


def test_signing_fixture_has_three_signatures():
    data = (APKO / "signing/APKINDEX.tar.gz").read_bytes()
    keys = {p.name: p.read_bytes() for p in (APKO / "signing/keys").iterdir()}
    for name, pem in keys.items():  # any one trusted key is enough
        assert read_index(data, where="signing", keyring={name: pem}).verified_by == name
    assert len(read_index(data, where="signing", keyring=keys).signatures) == 3


def test_untrusted_and_tampered_indexes_are_refused():
    path = APKO / "alpine-317/APKINDEX.tar.gz"
    data = path.read_bytes()
    with pytest.raises(SignatureError, match="UNTRUSTED"):
        read_index(data, where="317", keyring={"melange.rsa.pub": b"unused"})
    members = gzip_members(data, where="317")
    index = members[1].inflated.replace(b"P:nasm-doc\n", b"P:nasm-dog\n")
    tampered = members[0].raw + gzip.compress(index, mtime=0)
    keys = all_public_keys()
    with pytest.raises(SignatureError, match="BAD"):
        read_index(tampered, where="317", keyring=keys)
    # without a keyring the content is still readable (inspection), never trusted
    assert read_index(tampered, where="317", keyring=None).verified_by is None


def test_write_index_round_trip_and_determinism(signing_key):
    packages = parse_apkindex_text(index_text(APKO / "alpine-317/APKINDEX.tar.gz"))[:50]
    data = write_index(packages, description="v1", key=signing_key, source_date_epoch=1700000000)
    assert data == write_index(
        list(reversed(packages)), description="v1", key=signing_key, source_date_epoch=1700000000
    )
    keyring = {signing_key.keyname: signing_key.public_pem()}
    index = read_index(data, where="ours", keyring=keyring)
    assert index.verified_by == "test-key.rsa.pub"
    assert index.description == "v1"
    assert sorted(index.packages, key=record_key) == sorted(packages, key=record_key)
    # layout apk-tools expects: signature member, then one index member with EOA
    members = gzip_members(data, where="ours")
    assert len(members) == 2
    sig_entries = read_tar(members[0].inflated, where="sig")
    assert [e.path for e in sig_entries] == [".SIGN.RSA256.test-key.rsa.pub"]
    assert members[1].inflated.endswith(b"\0" * 1024)
    assert [e.path for e in read_tar(members[1].inflated, where="idx")] == [
        "DESCRIPTION",
        "APKINDEX",
    ]
    assert all(
        e.mtime == 1700000000 and e.mode == 0o644 for e in read_tar(members[1].inflated, where="i")
    )


def test_unsigned_index_reads_but_does_not_verify():
    data = write_index([PackageInfo(name="a", version="1-r0", checksum="Q1x=")], key=None)
    assert read_index(data, where="u", keyring=None).packages[0].name == "a"
    with pytest.raises(SignatureError, match="not signed"):
        read_index(data, where="u", keyring={})


def test_package_identity_matches_index_and_lock():
    # pretend-baselayout: C: in the apko test repo = sha1 of its control member (formats.md §1.8)
    apk = (
        THIRD_PARTY
        / "chainguard-dev+apko/internal/cli/testdata/packages/x86_64/pretend-baselayout-1.0.0-r0.apk"
    ).read_bytes()
    control = gzip_members(apk, where="apk")[1].raw
    assert package_identity(control) == "Q1m6wB0UFePGN8Drz82pC8y2uAiu8="


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "bad: empty file, expected gzip data"),
        (b"not gzip", "bad: expected a gzip member at byte 0, found b'not '"),
        (gzip.compress(b"garbage" * 100), "bad: not a ustar header at byte 0 (bad magic)"),
        (gzip.compress(b"\0" * 1024), "bad: no APKINDEX entry in the index archive"),
    ],
    ids=["empty", "text", "not-tar", "empty-tar"],
)
def test_bad_containers_are_format_errors(data, message):
    with pytest.raises(FormatError) as info:
        read_index(data, where="bad", keyring=None)
    assert str(info.value) == message


def test_fast_path_equals_general_parser():
    from nanodistro.formats.apkindex import _FAST_PATH_OK, _fast_record, _parse_lines

    assert _FAST_PATH_OK

    text = index_text(APKO / "alpine-316/APKINDEX.tar.gz")
    for record in text.split("\n\n"):
        if record:
            lines = record.split("\n")
            general = _parse_lines(lines, "x", 1)
            fast = _fast_record(lines)
            assert fast is not None
            assert [fast] == general
            assert vars(fast) == vars(general[0])
            assert list(vars(fast)) == list(vars(general[0]))  # same field order


@pytest.mark.parametrize(
    ("text", "line"),
    [("P:a\nV:1\n\nPfoo\nV:1\n", 4), ("Pfoo\nV:1\n", 1), ("P:a\nV:1\n\n\nVx\n", 5)],
)
def test_known_letter_without_colon_is_an_error(text: str, line: int) -> None:
    # The fast path looks letters up as one character and compares the colon separately.
    with pytest.raises(FormatError, match="expected '<letter>:<value>'") as info:
        parse_apkindex_text(text)
    assert info.value.line == line


def test_line_numbers_after_many_general_records():
    text = "".join(f"P:p{i}\nV:1\nz:extra\n\n" for i in range(3000)) + "P:bad\nV:1\nS:-1\n"
    with pytest.raises(FormatError) as info:
        parse_apkindex_text(text)
    assert info.value.line == 3000 * 4 + 3


def test_decompression_bomb_is_bounded():
    bomb = gzip.compress(b"\0" * (8 * 1024 * 1024), mtime=0)
    with pytest.raises(FormatError, match="exceeds the budget of"):
        read_index(bomb, where="bomb", keyring=None, max_inflated=1024 * 1024)


def test_index_bomb_is_refused_at_its_budget_with_little_memory(tmp_path: Path) -> None:
    """2 MB of gzip claiming a 2 GiB APKINDEX: refused at the 256 MiB index budget."""
    bomb = tmp_path / "APKINDEX.tar.gz"
    with bomb.open("wb") as out:
        size = write_gzip_bomb(out, zeros=2 * 1024**3, prefix=tar_header("APKINDEX", 2 * 1024**3))
    assert size < 3 * MIB
    status, stderr, peak = run_measured(
        "from nanodistro.formats.apkindex import read_index\n"
        "from nanodistro.errors import FormatError\n"
        "try:\n"
        "    read_index(open(sys.argv[1], 'rb').read(), where=sys.argv[1])\n"
        "except FormatError as error:\n"
        "    print(error, file=sys.stderr)\n"
        "    sys.exit(1)",
        str(bomb),
    )
    assert status == 1
    assert stderr.strip() == (
        f"{bomb}: decompressed size exceeds the budget of {256 * MIB} bytes (one in-memory read)"
    )
    assert peak < PEAK_RSS_LIMIT, f"peak RSS {peak >> 20} MiB"
