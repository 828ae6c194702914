"""RSA PKCS#1 v1.5 signature verification without ``cryptography`` (issue 18: resolve speed).

Importing ``cryptography`` costs 20-50 ms of CPU, more than a warm resolve spends on anything
else, only to check one signature over APKINDEX. Verification needs nothing but ``pow``:

- the public key ``(n, e)`` comes from a PEM SubjectPublicKeyInfo read by a strict, minimal DER
  reader: definite minimal lengths, the rsaEncryption OID with NULL parameters, positive minimal
  INTEGERs, nothing trailing at any level. Anything else returns None and the caller uses
  ``cryptography``'s loader (which accepts or refuses it as before);
- the signature is checked as RFC 8017 §8.2.2 with the *encode-and-compare* method: the whole
  expected block ``00 01 FF..FF 00 || DigestInfo || H`` is built and compared in one
  ``hmac.compare_digest``; the padding of the recovered block is never parsed, so the
  Bleichenbacher e=3 forgeries (garbage after the hash, short padding, loose DigestInfo) cannot
  match.

Signing and every other key use stay on ``cryptography``.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac

#: DER DigestInfo prefixes of RFC 8017 §9.2 note 1, by APK signature algorithm name.
DIGEST_INFO: dict[str, tuple[bytes, str]] = {
    "RSA": (bytes.fromhex("3021300906052b0e03021a05000414"), "sha1"),
    "RSA256": (bytes.fromhex("3031300d060960864801650304020105000420"), "sha256"),
    "RSA512": (bytes.fromhex("3051300d060960864801650304020305000440"), "sha512"),
}

_PEM_BEGIN = b"-----BEGIN PUBLIC KEY-----"
_PEM_END = b"-----END PUBLIC KEY-----"
#: rsaEncryption (1.2.840.113549.1.1.1) followed by NULL parameters, as DER.
_RSA_ALGORITHM_ID = bytes.fromhex("300d06092a864886f70d0101010500")
#: Moduli outside this range go to cryptography (it bounds the ``pow`` cost too).
MIN_MODULUS_BITS = 512
MAX_MODULUS_BITS = 16384


class _DerError(Exception):
    """Not the strict shape; the caller falls back."""


def _read_tlv(der: bytes, at: int, tag: int) -> tuple[bytes, int]:
    """The value of the element with ``tag`` at ``at`` and the offset after it (DER lengths)."""
    if at + 2 > len(der) or der[at] != tag:
        raise _DerError
    first = der[at + 1]
    at += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        # 0x80 is BER's indefinite form; more than 4 length bytes is no key we read.
        if count == 0 or count > 4 or at + count > len(der) or der[at] == 0:
            raise _DerError
        length = int.from_bytes(der[at : at + count], "big")
        if length < 0x80:  # long form where the short one fits: not DER
            raise _DerError
        at += count
    end = at + length
    if end > len(der):
        raise _DerError
    return der[at:end], end


def _read_positive_integer(der: bytes, at: int) -> tuple[int, int]:
    value, end = _read_tlv(der, at, 0x02)
    if not value or value[0] & 0x80:  # empty or negative
        raise _DerError
    if len(value) > 1 and value[0] == 0 and not value[1] & 0x80:  # not minimal
        raise _DerError
    return int.from_bytes(value, "big"), end


def _pem_body(pem: bytes) -> bytes:
    lines = pem.strip().split(b"\n")
    if len(lines) < 3 or lines[0] != _PEM_BEGIN or lines[-1] != _PEM_END:
        raise _DerError
    body = b"".join(lines[1:-1])
    try:
        return binascii.a2b_base64(body, strict_mode=True)
    except binascii.Error:
        raise _DerError from None


def parse_rsa_public_key(pem: bytes) -> tuple[int, int] | None:
    """``(n, e)`` of an RSA SubjectPublicKeyInfo PEM in the strict shape, else None."""
    try:
        der = _pem_body(pem)
        spki, end = _read_tlv(der, 0, 0x30)
        if end != len(der) or not spki.startswith(_RSA_ALGORITHM_ID):
            raise _DerError
        bits, end = _read_tlv(spki, len(_RSA_ALGORITHM_ID), 0x03)
        if end != len(spki) or not bits or bits[0] != 0:  # unused bits must be 0
            raise _DerError
        rsa_key, end = _read_tlv(bits, 1, 0x30)
        if end != len(bits):
            raise _DerError
        n, at = _read_positive_integer(rsa_key, 0)
        e, at = _read_positive_integer(rsa_key, at)
        if at != len(rsa_key):
            raise _DerError
    except _DerError:
        return None
    if not MIN_MODULUS_BITS <= n.bit_length() <= MAX_MODULUS_BITS:
        return None
    if not n & 1 or not e & 1 or not 3 <= e < n:
        return None
    return n, e


def verify_pkcs1v15(n: int, e: int, data: bytes, signature: bytes, algorithm: str) -> bool:
    """RFC 8017 §8.2.2 RSASSA-PKCS1-v1_5-VERIFY of ``data`` (encode and compare)."""
    prefix, hash_name = DIGEST_INFO[algorithm]
    k = (n.bit_length() + 7) // 8
    if len(signature) != k:
        return False
    s = int.from_bytes(signature, "big")
    if s >= n:
        return False
    encoded = pow(s, e, n).to_bytes(k, "big")
    t = prefix + hashlib.new(hash_name, data).digest()
    if k < len(t) + 11:
        return False
    expected = b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t
    return hmac.compare_digest(encoded, expected)


__all__ = ["DIGEST_INFO", "parse_rsa_public_key", "verify_pkcs1v15"]
