"""APK v2 signatures: the ``.SIGN.<ALG>.<keyname>`` gzip member used by packages and APKINDEX.

Shape (reference/formats.md §1.4, §2.1): a gzip member holding a tar (no end-of-archive) with
one or more entries named ``.SIGN.<ALG>.<keyname>`` whose content is a raw RSA PKCS#1 v1.5
signature. ``<keyname>`` is the *file name* of the public key in ``/etc/apk/keys``. The signed
bytes are compressed gzip bytes: the control member of a package (when ``.PKGINFO`` has
``datahash``), otherwise everything after the signature member (old packages, APKINDEX).

Typical use::

    entries, signed_from = split_signature(data, where="APKINDEX.tar.gz")
    verified = verify_signed(entries, data[signed_from:], keyring, where="APKINDEX.tar.gz")

    member = signature_member(key, index_member)      # prepend to sign an index
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from nanodistro.errors import FormatError, KeyLoadError, SignatureError
from nanodistro.formats.gzipstream import gzip_member, gzip_members
from nanodistro.formats.rsa_pure import parse_rsa_public_key, verify_pkcs1v15
from nanodistro.formats.tarentry import TarEntry
from nanodistro.formats.tarread import read_tar
from nanodistro.formats.tarwrite import write_tar

# cryptography is loaded on the first key use (its import costs more than reading an index
# from the cache does, issue 18); the tar/gzip parts come from their own modules for the same
# reason (``tarball`` also loads extraction and parallel compression).
if TYPE_CHECKING:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa

#: Signature algorithm name in ``.SIGN.<ALG>.`` -> digest (``AT:src/extract_v2.c``).
#: ``DSA`` exists in the grammar but is obsolete; like apko we skip it.
SIGNATURE_ALGORITHMS: dict[str, Callable[..., hashlib._Hash]] = {
    "RSA512": hashlib.sha512,
    "RSA256": hashlib.sha256,
    "RSA": hashlib.sha1,
}
SIGN_PREFIX = ".SIGN."
#: apk-tools ignores signature payloads larger than this.
MAX_SIGNATURE_SIZE = 65536
KEY_SUFFIX = ".rsa.pub"

#: Public key file name (e.g. ``melange.rsa.pub``) -> PEM bytes.
Keyring = Mapping[str, bytes]


class UntrustedSignatureError(SignatureError):
    """Unsigned, or signed only by keys that are not in the keyring (apk: "UNTRUSTED")."""


class BadSignatureError(SignatureError):
    """Signed by a trusted key but the signature does not match (apk: "BAD signature")."""


@dataclass(frozen=True)
class SignatureEntry:
    """One ``.SIGN.<algorithm>.<keyname>`` entry and its raw signature bytes."""

    algorithm: str
    keyname: str
    signature: bytes

    @property
    def name(self) -> str:
        return format_signature_name(self.algorithm, self.keyname)


class VerifiedSignature(NamedTuple):
    keyname: str
    algorithm: str


@dataclass(frozen=True)
class SigningKey:
    """An RSA private key (PEM) and the public key file name its signatures will carry."""

    private_pem: bytes
    keyname: str

    def public_pem(self) -> bytes:
        """SPKI PEM of the matching public key (what goes into ``/etc/apk/keys/<keyname>``)."""
        return public_pem_from_private(self.private_pem, where=self.keyname)


def parse_signature_name(name: str) -> tuple[str, str] | None:
    """``.SIGN.RSA256.melange.rsa.pub`` -> ``("RSA256", "melange.rsa.pub")``; None otherwise."""
    if not name.startswith(SIGN_PREFIX):
        return None
    algorithm, sep, keyname = name[len(SIGN_PREFIX) :].partition(".")
    if not sep or not algorithm or not keyname:
        return None
    return algorithm, keyname


def format_signature_name(algorithm: str, keyname: str) -> str:
    return f"{SIGN_PREFIX}{algorithm}.{keyname}"


def _crypto_hash(algorithm: str) -> hashes.HashAlgorithm:
    from cryptography.hazmat.primitives import hashes

    if algorithm == "RSA512":
        return hashes.SHA512()
    return hashes.SHA256() if algorithm == "RSA256" else hashes.SHA1()


def _load_private(private_key_pem: bytes, where: str) -> rsa.RSAPrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    try:
        key = serialization.load_pem_private_key(private_key_pem, password=None)
    except (ValueError, TypeError) as error:
        raise KeyLoadError(f"not an unencrypted PEM private key ({error})", where=where) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise KeyLoadError("APK signing needs an RSA key", where=where)
    return key


def _load_public(public_key_pem: bytes, where: str) -> rsa.RSAPublicKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    try:
        key = serialization.load_pem_public_key(public_key_pem)
    except (ValueError, TypeError) as error:
        raise KeyLoadError(f"not a PEM public key ({error})", where=where) from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise KeyLoadError("APK signatures need an RSA public key", where=where)
    return key


def public_pem_from_private(private_key_pem: bytes, *, where: str = "private key") -> bytes:
    from cryptography.hazmat.primitives import serialization

    return (
        _load_private(private_key_pem, where)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _check_algorithm(algorithm: str, where: str) -> None:
    if algorithm not in SIGNATURE_ALGORITHMS:
        raise SignatureError(
            f"unsupported signature algorithm {algorithm!r} "
            f"(expected one of {', '.join(SIGNATURE_ALGORITHMS)})",
            where=where,
        )


def sign(private_key_pem: bytes, data: bytes, algorithm: str = "RSA256") -> bytes:
    """RSA PKCS#1 v1.5 signature of ``data`` with the digest of ``algorithm``."""
    _check_algorithm(algorithm, "sign")
    from cryptography.hazmat.primitives.asymmetric import padding

    key = _load_private(private_key_pem, "signing key")
    return key.sign(data, padding.PKCS1v15(), _crypto_hash(algorithm))


def verify(public_key_pem: bytes, data: bytes, signature: bytes, algorithm: str) -> bool:
    """Whether ``signature`` is a valid PKCS#1 v1.5 signature of ``data``.

    Raises ``KeyLoadError`` for an unusable key and ``SignatureError`` for an unknown algorithm.
    """
    _check_algorithm(algorithm, "verify")
    # A key in the strict SPKI shape is verified without importing cryptography (its import
    # costs more than a warm resolve does otherwise, issue 18); any other key goes to it.
    numbers = parse_rsa_public_key(public_key_pem)
    if numbers is not None:
        return verify_pkcs1v15(*numbers, data, signature, algorithm)
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import padding

    key = _load_public(public_key_pem, "public key")
    try:
        key.verify(signature, data, padding.PKCS1v15(), _crypto_hash(algorithm))
    except (InvalidSignature, ValueError):
        return False
    return True


def find_key(keyring: Keyring, keyname: str) -> tuple[str, bytes] | None:
    """Look ``keyname`` up by file name, also with ``.rsa.pub`` stripped (as apko does)."""
    if keyname in keyring:
        return keyname, keyring[keyname]
    stem = keyname.removesuffix(KEY_SUFFIX)
    for name, pem in keyring.items():
        if name.removesuffix(KEY_SUFFIX) == stem:
            return name, pem
    return None


def signature_tar(entries: Sequence[SignatureEntry], *, mtime: int = 0) -> bytes:
    """The tar (no end-of-archive) of a signature member; header as melange writes it."""
    return write_tar(
        [
            TarEntry(path=entry.name, type="file", mode=0o644, mtime=mtime, data=entry.signature)
            for entry in entries
        ],
        end_of_archive=False,
    )


def signature_member(
    key: SigningKey, signed_bytes: bytes, algorithm: str = "RSA256", mtime: int = 0
) -> bytes:
    """The gzip member holding one ``.SIGN.<algorithm>.<keyname>`` entry over ``signed_bytes``."""
    entry = SignatureEntry(algorithm, key.keyname, sign(key.private_pem, signed_bytes, algorithm))
    return gzip_member(signature_tar([entry], mtime=mtime))


def read_signature_entries(tar_bytes: bytes, *, where: str) -> list[SignatureEntry] | None:
    """Signature entries of an *inflated* first member, or None if it is not a signature tar.

    A signature tar holds only ``.SIGN.*`` regular files; unknown algorithms (e.g. ``DSA``)
    are kept so callers can report them, oversized payloads are dropped as apk-tools does.
    """
    tar_entries = read_tar(tar_bytes, where=where)
    if not tar_entries or not all(e.path.startswith(SIGN_PREFIX) for e in tar_entries):
        return None
    found: list[SignatureEntry] = []
    for tar_entry in tar_entries:
        parsed = parse_signature_name(tar_entry.path)
        if parsed is None or tar_entry.type != "file":
            raise FormatError(f"malformed signature entry {tar_entry.path!r}", where=where)
        if len(tar_entry.data) > MAX_SIGNATURE_SIZE:
            continue
        found.append(SignatureEntry(parsed[0], parsed[1], tar_entry.data))
    return found


def split_signature(data: bytes, *, where: str) -> tuple[list[SignatureEntry], int]:
    """For a whole file (package or APKINDEX): its signature entries and where signed data starts.

    Returns ``([], 0)`` when the first gzip member is not a signature member (unsigned file).
    """
    first = gzip_members(data, where=where, max_members=1)[0]
    entries = read_signature_entries(first.inflated, where=where)
    if entries is None:
        return [], 0
    return entries, len(first.raw)


def require_trusted(entries: Sequence[SignatureEntry], keyring: Keyring, *, where: str) -> None:
    """Raise ``UntrustedSignatureError`` unless some entry names a key in ``keyring``.

    Lets callers reject untrusted files before parsing the rest (apk-tools checks trust first).
    """
    if not entries:
        raise UntrustedSignatureError("not signed", where=where)
    for entry in entries:
        if entry.algorithm in SIGNATURE_ALGORITHMS and find_key(keyring, entry.keyname):
            return
    names = ", ".join(entry.name for entry in entries)
    raise UntrustedSignatureError(f"UNTRUSTED: no trusted key for {names}", where=where)


def verify_signed(
    entries: Sequence[SignatureEntry],
    signed_bytes: bytes,
    keyring: Keyring,
    *,
    where: str,
) -> VerifiedSignature:
    """Check ``signed_bytes`` against the first entry whose key is in ``keyring``.

    Like apk-tools (``apk_sign_ctx_process_file``) the first signature made with a trusted key
    decides: ``BadSignatureError`` if it does not match; ``UntrustedSignatureError`` if there
    is no signature or none from a trusted key. Returns the key file name and algorithm.
    """
    if not entries:
        raise UntrustedSignatureError("not signed", where=where)
    for entry in entries:
        if entry.algorithm not in SIGNATURE_ALGORITHMS:
            continue
        found = find_key(keyring, entry.keyname)
        if found is None:
            continue
        keyname, pem = found
        try:
            ok = verify(pem, signed_bytes, entry.signature, entry.algorithm)
        except KeyLoadError as error:
            raise KeyLoadError(error.message, where=f"keyring: {keyname}") from None
        if not ok:
            raise BadSignatureError(
                f"BAD signature {entry.name} (key {keyname}, {entry.algorithm})", where=where
            )
        return VerifiedSignature(keyname, entry.algorithm)
    names = ", ".join(entry.name for entry in entries)
    raise UntrustedSignatureError(f"UNTRUSTED: no trusted key for {names}", where=where)
