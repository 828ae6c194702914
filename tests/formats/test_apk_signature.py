"""APK signature members: names, algorithms, keyring lookup, trust decisions, real indexes."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from fixture_paths import THIRD_PARTY
from nanodistro.errors import KeyLoadError, SignatureError
from nanodistro.formats.signature import (
    SIGNATURE_ALGORITHMS,
    BadSignatureError,
    SignatureEntry,
    SigningKey,
    UntrustedSignatureError,
    find_key,
    format_signature_name,
    parse_signature_name,
    read_signature_entries,
    sign,
    signature_member,
    split_signature,
    verify,
    verify_signed,
)
from nanodistro.formats.tarball import gzip_member, read_tar
from nanodistro.trust.keys import generate_key, load_keyring, load_signing_key
from signing_keys import KeyAndKeyring, make_key


@pytest.fixture(scope="module")
def key_pair(tmp_path_factory: pytest.TempPathFactory) -> KeyAndKeyring:
    return make_key(tmp_path_factory.mktemp("keys"))


def test_signature_names() -> None:
    assert parse_signature_name(".SIGN.RSA256.melange.rsa.pub") == ("RSA256", "melange.rsa.pub")
    assert parse_signature_name(
        ".SIGN.RSA.alpine-devel@lists.alpinelinux.org-616ae350.rsa.pub"
    ) == ("RSA", "alpine-devel@lists.alpinelinux.org-616ae350.rsa.pub")
    assert parse_signature_name(".PKGINFO") is None
    assert parse_signature_name(".SIGN.RSA") is None
    assert format_signature_name("RSA512", "k.rsa.pub") == ".SIGN.RSA512.k.rsa.pub"
    assert set(SIGNATURE_ALGORITHMS) == {"RSA512", "RSA256", "RSA"}


@pytest.mark.parametrize("algorithm", ["RSA512", "RSA256", "RSA"])
def test_sign_verify(key_pair: tuple[SigningKey, dict[str, bytes]], algorithm: str) -> None:
    key, _ = key_pair
    signature = sign(key.private_pem, b"data", algorithm)
    assert len(signature) == 256
    assert verify(key.public_pem(), b"data", signature, algorithm)
    assert not verify(key.public_pem(), b"datA", signature, algorithm)
    other = "RSA256" if algorithm != "RSA256" else "RSA"
    assert not verify(key.public_pem(), b"data", signature, other)


def test_bad_inputs_raise_nanodistro_errors() -> None:
    with pytest.raises(KeyLoadError, match="not an unencrypted PEM private key"):
        sign(b"not a key", b"x")
    with pytest.raises(KeyLoadError, match=r"^public key: not a PEM public key"):
        verify(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", b"x", b"y", "RSA")
    with pytest.raises(SignatureError, match="DSA"):
        verify(b"", b"x", b"y", "DSA")


def test_find_key_strips_rsa_pub() -> None:
    keyring = {"melange.rsa.pub": b"A"}
    assert find_key(keyring, "melange.rsa.pub") == ("melange.rsa.pub", b"A")
    assert find_key(keyring, "melange") == ("melange.rsa.pub", b"A")
    assert find_key({"melange": b"B"}, "melange.rsa.pub") == ("melange", b"B")
    assert find_key(keyring, "other.rsa.pub") is None


def test_signature_member_layout(key_pair: tuple[SigningKey, dict[str, bytes]]) -> None:
    key, keyring = key_pair
    member = signature_member(key, b"signed", mtime=1234)
    assert member[:4] == b"\x1f\x8b\x08\x00" and member[4:8] == b"\0\0\0\0"
    tar = gzip.decompress(member)
    assert len(tar) == 1024  # one header + one 256-byte signature block, no end-of-archive
    (entry,) = read_tar(tar, where="sig")
    assert entry.path == f".SIGN.RSA256.{key.keyname}"
    assert (entry.mode, entry.uid, entry.uname, entry.mtime) == (0o644, 0, "root", 1234)
    entries, start = split_signature(member + gzip_member(b"rest"), where="x")
    assert start == len(member)
    assert verify_signed(entries, b"signed", keyring, where="x") == (key.keyname, "RSA256")


def test_trust_decisions(key_pair: tuple[SigningKey, dict[str, bytes]]) -> None:
    key, keyring = key_pair
    good = SignatureEntry("RSA256", key.keyname, sign(key.private_pem, b"d"))
    bad = SignatureEntry("RSA256", key.keyname, b"\0" * 256)
    unknown = SignatureEntry("RSA256", "someone-else.rsa.pub", b"\0" * 256)
    dsa = SignatureEntry("DSA", key.keyname, b"\0" * 64)
    assert verify_signed([unknown, dsa, good], b"d", keyring, where="f").algorithm == "RSA256"
    with pytest.raises(BadSignatureError, match=r"^f: BAD signature"):
        verify_signed([bad, good], b"d", keyring, where="f")  # first trusted one decides (AT)
    with pytest.raises(UntrustedSignatureError, match="someone-else"):
        verify_signed([unknown], b"d", keyring, where="f")
    with pytest.raises(UntrustedSignatureError, match="not signed"):
        verify_signed([], b"d", keyring, where="f")


def test_non_signature_first_member() -> None:
    assert read_signature_entries(b"", where="x") is None
    assert split_signature(gzip_member(b""), where="x") == ([], 0)


@pytest.mark.parametrize(
    ("index", "keys"),
    [
        ("chainguard-dev+apko/pkg/apk/apk/testdata/signing", "keys"),
        ("chainguard-dev+apko/pkg/apk/apk/testdata/rsa256-signed", "test-rsa256.rsa.pub"),
    ],
)
def test_real_indexes_verify(index: str, keys: str) -> None:
    directory = THIRD_PARTY / index
    data = (directory / "APKINDEX.tar.gz").read_bytes()
    keyring = load_keyring(directory / keys)
    entries, start = split_signature(data, where=index)
    assert entries and start > 0
    # every RSA256 signature on the index verifies over the index member
    for entry in entries:
        assert verify_signed([entry], data[start:], keyring, where=index).algorithm == "RSA256"
    with pytest.raises(BadSignatureError):
        verify_signed(entries, data[start:] + b"\0", keyring, where=index)


def test_keys_files(tmp_path: Path) -> None:
    private, public = generate_key("nanodistro", tmp_path, bits=2048)
    assert private.name.startswith("nanodistro-") and private.name.endswith(".rsa")
    assert len(private.name) == len("nanodistro-12345678.rsa")
    assert public.name == private.name + ".pub"
    assert private.stat().st_mode & 0o777 == 0o600
    # PKCS#1 PEM, as `melange keygen` writes (the marker is split so secret scanners do not
    # mistake this assertion for a committed key).
    assert private.read_bytes().startswith(b"-----BEGIN RSA " + b"PRIVATE KEY-----")
    assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    key = load_signing_key(private)
    assert key.keyname == public.name and key.public_pem() == public.read_bytes()
    assert list(load_keyring(tmp_path)) == [public.name]
    with pytest.raises(KeyLoadError, match="at least 2048"):
        generate_key("x", tmp_path, bits=1024)
    with pytest.raises(KeyLoadError, match="key name"):
        generate_key("../x", tmp_path, bits=2048)
    (tmp_path / "bad.rsa.pub").write_text("nope")
    with pytest.raises(KeyLoadError, match=r"bad\.rsa\.pub: not a PEM public key"):
        load_keyring(tmp_path)
    other, _ = generate_key("other", tmp_path / "o", bits=2048)
    public.with_name(other.name + ".pub").write_bytes(public.read_bytes())
    other.rename(public.with_name(other.name))
    with pytest.raises(KeyLoadError, match="does not belong"):
        load_signing_key(public.with_name(other.name))
