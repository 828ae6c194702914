"""The cryptography-free RSA PKCS#1 v1.5 verifier (formats/rsa_pure.py) against cryptography.

Every fixture key, index and package of ../shared/fixtures gives the same answer both ways;
generated keys (1024/2048/4096 bits, e=3 and 65537) verify their own signatures; hostile
signatures and keys (bit flips, wrong lengths, s >= n, Bleichenbacher e=3 shapes and a real
e=3 forgery, loose DigestInfo, keys with trailing bytes, a negative modulus, an EC key) are
refused by both.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from fixture_paths import FIXTURES
from nanodistro.errors import FormatError, KeyLoadError
from nanodistro.formats import signature
from nanodistro.formats.gzipstream import gzip_members
from nanodistro.formats.rsa_pure import DIGEST_INFO, parse_rsa_public_key, verify_pkcs1v15

ALGORITHMS = ("RSA", "RSA256", "RSA512")
HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "RSA": hashes.SHA1,
    "RSA256": hashes.SHA256,
    "RSA512": hashes.SHA512,
}
DATA = b"APKINDEX bytes, or a package's control member"


def crypto_verify(pem: bytes, data: bytes, sig: bytes, algorithm: str) -> bool | None:
    """cryptography's answer; None when it does not load the key as RSA."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        return None
    if not isinstance(key, rsa.RSAPublicKey):
        return None
    try:
        key.verify(sig, data, padding.PKCS1v15(), HASHES[algorithm]())
    except (InvalidSignature, ValueError):
        return False
    return True


def pure_verify(pem: bytes, data: bytes, sig: bytes, algorithm: str) -> bool | None:
    numbers = parse_rsa_public_key(pem)
    return None if numbers is None else verify_pkcs1v15(*numbers, data, sig, algorithm)


# --- fixtures of the ecosystem ------------------------------------------------------------


def fixture_keys() -> dict[bytes, str]:
    keys: dict[bytes, str] = {}
    for path in sorted(FIXTURES.rglob("*.pub")):
        keys.setdefault(path.read_bytes(), str(path.relative_to(FIXTURES)))
    return keys


def signed_files() -> list[Path]:
    return sorted([*FIXTURES.rglob("APKINDEX.tar.gz"), *FIXTURES.rglob("*.apk")])


def test_fixture_keys_parse_as_cryptography_reads_them() -> None:
    parsed = 0
    for pem, name in fixture_keys().items():
        numbers = parse_rsa_public_key(pem)
        if numbers is None:
            continue  # left to cryptography, which decides as before
        key = serialization.load_pem_public_key(pem)
        assert isinstance(key, rsa.RSAPublicKey), name
        assert numbers == (key.public_numbers().n, key.public_numbers().e), name
        parsed += 1
    # the Alpine, Wolfi and apko keys are all in the strict shape: the fast path is taken
    assert parsed >= 20
    alpine = FIXTURES / "third_party/alpinelinux+alpine-chroot-install/alpine-keys"
    assert all(parse_rsa_public_key(p.read_bytes()) for p in alpine.glob("*.rsa.pub"))


def test_every_fixture_signature_gets_the_same_answer() -> None:
    keys = [pem for pem in fixture_keys() if parse_rsa_public_key(pem) is not None]
    compared = valid = 0
    for path in signed_files():
        data = path.read_bytes()
        try:
            entries, signed_from = signature.split_signature(data, where=str(path))
            members = gzip_members(data, where=str(path), max_members=2)
        except FormatError:
            continue
        # index and old packages: the rest of the file; datahash packages: the control member
        candidates = {data[signed_from:]}
        if len(members) == 2 and signed_from:
            candidates.add(members[1].raw)
        for entry in entries:
            if entry.algorithm not in ALGORITHMS:
                continue
            for pem in keys:
                for signed in candidates:
                    want = crypto_verify(pem, signed, entry.signature, entry.algorithm)
                    got = pure_verify(pem, signed, entry.signature, entry.algorithm)
                    assert got == want, (path, entry.name)
                    compared += 1
                    valid += bool(got)
    assert compared > 1000 and valid >= 20, (compared, valid)


# --- generated keys -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys() -> dict[tuple[int, int], rsa.RSAPrivateKey]:
    return {
        (bits, e): rsa.generate_private_key(public_exponent=e, key_size=bits)
        for bits in (1024, 2048, 4096)
        for e in (3, 65537)
    }


def public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def raw_sign(key: rsa.RSAPrivateKey, block: bytes) -> bytes:
    """The RSA private operation on an encoded block of k bytes (to sign hostile blocks)."""
    numbers = key.private_numbers()
    n = numbers.public_numbers.n
    k = (n.bit_length() + 7) // 8
    assert len(block) == k
    return pow(int.from_bytes(block, "big"), numbers.d, n).to_bytes(k, "big")


def block(k: int, t: bytes, *, pad: bytes | None = None, tail: bytes = b"") -> bytes:
    pad = b"\xff" * (k - len(t) - len(tail) - 3) if pad is None else pad
    em = b"\x00\x01" + pad + b"\x00" + t + tail
    return em + b"\x00" * (k - len(em))  # only where the shape is short on purpose


def both(pem: bytes, data: bytes, sig: bytes, algorithm: str) -> tuple[bool | None, bool | None]:
    return pure_verify(pem, data, sig, algorithm), crypto_verify(pem, data, sig, algorithm)


@pytest.mark.parametrize("bits", [1024, 2048, 4096])
@pytest.mark.parametrize("e", [3, 65537])
def test_generated_keys_verify_and_refuse(
    keys: dict[tuple[int, int], rsa.RSAPrivateKey], bits: int, e: int
) -> None:
    key = keys[bits, e]
    pem = public_pem(key)
    n = key.public_key().public_numbers().n
    k = (n.bit_length() + 7) // 8
    for algorithm in ALGORITHMS:
        sig = key.sign(DATA, padding.PKCS1v15(), HASHES[algorithm]())
        assert both(pem, DATA, sig, algorithm) == (True, True)
        # through the project's entry point too, which now takes the pure path
        assert signature.verify(pem, DATA, sig, algorithm)
        flipped_sig = bytes([sig[0] ^ 0x01]) + sig[1:]
        assert both(pem, DATA, flipped_sig, algorithm) == (False, False)
        assert both(pem, DATA[:-1] + b"?", sig, algorithm) == (False, False)
        assert both(pem, DATA, sig[:-1] + bytes([sig[-1] ^ 0x80]), algorithm) == (False, False)
        assert both(pem, DATA, b"\x00" + sig, algorithm) == (False, False)  # longer than k
        assert both(pem, DATA, sig[1:], algorithm) == (False, False)  # shorter than k
        s = int.from_bytes(sig, "big")
        too_big = s + n if s + n < 256**k else n
        assert both(pem, DATA, too_big.to_bytes(k, "big"), algorithm) == (False, False)
        assert both(pem, DATA, n.to_bytes(k, "big"), algorithm) == (False, False)
        # a signature made with another algorithm's digest does not pass for this one
        other = "RSA256" if algorithm == "RSA" else "RSA"
        assert both(pem, DATA, sig, other) == (False, False)


def test_short_signature_with_leading_zero_is_refused(
    keys: dict[tuple[int, int], rsa.RSAPrivateKey],
) -> None:
    # a valid signature whose first byte is 0, sent without it: same integer, wrong length
    key = keys[1024, 65537]
    pem = public_pem(key)
    for i in range(5000):
        data = DATA + str(i).encode()
        sig = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        if sig[0] == 0:
            break
    else:
        pytest.fail("no signature with a leading zero byte in 5000 tries")
    assert both(pem, data, sig, "RSA256") == (True, True)
    assert both(pem, data, sig[1:], "RSA256") == (False, False)


def hostile_blocks(k: int, algorithm: str, data: bytes) -> dict[str, bytes]:
    prefix, hash_name = DIGEST_INFO[algorithm]
    h = hashlib.new(hash_name, data).digest()
    t = prefix + h
    sha1_oid = bytes.fromhex("06052b0e03021a")
    md5_info = bytes.fromhex("3020300c06082a864886f70d020505000410")
    sha256_info = DIGEST_INFO["RSA256"][0]
    return {
        "garbage after the hash": block(k, t, pad=b"\xff" * 8, tail=b"\x42" * (k - len(t) - 11)),
        "short padding, zeros after": block(k, t, pad=b"\xff" * 8),
        "padding not all FF": block(k, t, pad=b"\xff" * 10 + b"\xfe" + b"\xff" * (k - len(t) - 14)),
        "block type 2": b"\x00\x02" + block(k, t)[2:],
        "no zero separator": b"\x00\x01" + b"\xff" * (k - len(t) - 2) + t,
        "DigestInfo without NULL": block(
            k,
            bytes([0x30, len(h) + 11, 0x30, 0x07]) + sha1_oid + bytes([0x04, len(h)]) + h
            if algorithm == "RSA"
            else bytes([0x30, len(prefix) - 2 + len(h) - 2, 0x30, prefix[3] - 2])
            + prefix[4 : 4 + prefix[5] + 2]
            + bytes([0x04, len(h)])
            + h,
        ),
        "wrong OID (MD5's)": block(k, md5_info + h[:16]),
        "wrong OID (SHA-256's around SHA-1)": block(k, sha256_info[:-1] + bytes([len(h)]) + h)
        if algorithm == "RSA"
        else block(k, DIGEST_INFO["RSA"][0][:-1] + bytes([len(h)]) + h),
        "long-form length in DigestInfo": block(k, bytes([0x30, 0x81, prefix[1]]) + prefix[2:] + h),
        "hash only, no DigestInfo": block(k, h),
    }


@pytest.mark.parametrize("e", [3, 65537])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_hostile_blocks_signed_with_the_real_key_are_refused(
    keys: dict[tuple[int, int], rsa.RSAPrivateKey], e: int, algorithm: str
) -> None:
    # The private key signs each malformed block, so only the verifier's check stands between
    # it and acceptance (stronger than a forgery, which needs e=3 and room to work).
    key = keys[2048, e]
    pem = public_pem(key)
    k = 256
    for name, em in hostile_blocks(k, algorithm, DATA).items():
        assert len(em) == k, name
        assert both(pem, DATA, raw_sign(key, em), algorithm) == (False, False), name
    # the well-formed block signed the same way is accepted: the harness is not refusing all
    prefix, hash_name = DIGEST_INFO[algorithm]
    good = block(k, prefix + hashlib.new(hash_name, DATA).digest())
    assert both(pem, DATA, raw_sign(key, good), algorithm) == (True, True)


def icbrt_ceil(x: int) -> int:
    r = 1 << ((x.bit_length() + 2) // 3)
    while True:
        nxt = (2 * r + x // (r * r)) // 3
        if nxt >= r:
            break
        r = nxt
    while r**3 < x:
        r += 1
    return r


def test_bleichenbacher_e3_forgery_is_refused(
    keys: dict[tuple[int, int], rsa.RSAPrivateKey],
) -> None:
    # Bleichenbacher 2006: with e=3 and no private key, a cube root gives s with s**3 < n whose
    # top bytes are 00 01 FF.. 00 DigestInfo H and whose tail is garbage. A verifier that parses
    # the padding and stops after the hash accepts it.
    key = keys[4096, 3]
    pem = public_pem(key)
    n = key.public_key().public_numbers().n
    k = (n.bit_length() + 7) // 8
    t = DIGEST_INFO["RSA"][0] + hashlib.sha1(DATA).digest()
    head = b"\x00\x01" + b"\xff" * 8 + b"\x00" + t
    target = int.from_bytes(head + b"\xff" * (k - len(head)), "big")
    s = icbrt_ceil(int.from_bytes(head + b"\x00" * (k - len(head)), "big"))
    assert s**3 <= target < n  # the forged block really begins with the wanted bytes
    forged = s.to_bytes(k, "big")
    assert pow(s, 3, n).to_bytes(k, "big").startswith(head)
    assert both(pem, DATA, forged, "RSA") == (False, False)


# --- hostile keys ----------------------------------------------------------------------------


def der(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = (n.bit_length() + 7) // 8
    return bytes([tag, 0x80 | size]) + n.to_bytes(size, "big") + content


def der_int(value: int, *, negative_encoding: bool = False) -> bytes:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    if raw[0] & 0x80 and not negative_encoding:
        raw = b"\x00" + raw  # without it the high bit makes the INTEGER negative
    return der(0x02, raw)


RSA_ALG = bytes.fromhex("300d06092a864886f70d0101010500")


def spki(
    n: int,
    e: int,
    *,
    alg: bytes = RSA_ALG,
    inner_tail: bytes = b"",
    outer_tail: bytes = b"",
    negative: bool = False,
) -> bytes:
    rsa_key = der(0x30, der_int(n, negative_encoding=negative) + der_int(e) + inner_tail)
    return der(0x30, alg + der(0x03, b"\x00" + rsa_key)) + outer_tail


def pem_of(der_bytes: bytes) -> bytes:
    import base64

    body = base64.encodebytes(der_bytes).replace(b"\n", b"")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return b"-----BEGIN PUBLIC KEY-----\n" + b"\n".join(lines) + b"\n-----END PUBLIC KEY-----\n"


def test_hostile_keys_are_refused_by_both(
    keys: dict[tuple[int, int], rsa.RSAPrivateKey],
) -> None:
    key = keys[2048, 65537]
    numbers = key.public_key().public_numbers()
    n, e = numbers.n, numbers.e
    sig = key.sign(DATA, padding.PKCS1v15(), hashes.SHA256())
    canonical = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert spki(n, e) == canonical  # the encoder below builds what cryptography writes
    assert both(pem_of(canonical), DATA, sig, "RSA256") == (True, True)

    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    hostile = {
        "trailing bytes after the SPKI": pem_of(spki(n, e, outer_tail=b"\x00\x00")),
        "trailing bytes in RSAPublicKey": pem_of(spki(n, e, inner_tail=b"\x02\x01\x01")),
        "negative modulus": pem_of(spki(n, e, negative=True)),
        "EC key": ec_pem,
    }
    for name, pem in hostile.items():
        assert parse_rsa_public_key(pem) is None, name
        assert crypto_verify(pem, DATA, sig, "RSA256") in (None, False), name
        # the project's verify falls back to cryptography's loader, which refuses it
        try:
            accepted = signature.verify(pem, DATA, sig, "RSA256")
        except KeyLoadError:
            accepted = False
        assert not accepted, name

    # shapes the strict reader leaves to cryptography (which decides as it did before)
    loose = {
        "RSA key without NULL parameters": pem_of(
            spki(n, e, alg=bytes.fromhex("300b06092a864886f70d010101"))
        ),
        "non-minimal INTEGER": pem_of(
            der(
                0x30,
                RSA_ALG
                + der(0x03, b"\x00" + der(0x30, der_int(n) + der(0x02, b"\x00\x01\x00\x01"))),
            )
        ),
        "long-form length where short fits": pem_of(
            der(
                0x30,
                RSA_ALG + der(0x03, b"\x00" + der(0x30, der_int(n) + b"\x02\x81\x03\x01\x00\x01")),
            )
        ),
        "BIT STRING with unused bits": pem_of(
            der(0x30, RSA_ALG + der(0x03, b"\x01" + der(0x30, der_int(n) + der_int(e))))
        ),
        "PKCS#1 RSA PUBLIC KEY": key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
        ),
        "PEM with junk before it": b"junk\n" + pem_of(canonical),
        "base64 with a bad character": pem_of(canonical).replace(b"MII", b"M!I", 1),
        "even modulus": pem_of(spki(n + 1, e)),
        "e = 1": pem_of(spki(n, 1)),
    }
    for name, pem in loose.items():
        assert parse_rsa_public_key(pem) is None, name
        try:
            via_project: bool | None = signature.verify(pem, DATA, sig, "RSA256")
        except KeyLoadError:
            via_project = None
        assert via_project == crypto_verify(pem, DATA, sig, "RSA256"), name


def test_pem_is_read_with_crlf_refused_to_cryptography() -> None:
    # CRLF line ends are not the strict shape: left to cryptography, no exception
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = public_pem(key).replace(b"\n", b"\r\n")
    assert parse_rsa_public_key(pem) is None
    sig = key.sign(DATA, padding.PKCS1v15(), hashes.SHA1())
    assert signature.verify(pem, DATA, sig, "RSA") is True
