"""ECDSA P-256 keys for signing images, attestations and provenance (cosign's key type).

APK packages and indexes stay RSA (``trust/keys.py``); everything in the sigstore world — cosign
signatures, DSSE envelopes around in-toto statements — uses ECDSA P-256 with SHA-256, signatures
ASN.1 DER encoded, public keys PEM SubjectPublicKeyInfo (what ``cosign verify --key`` reads).

``EcdsaSigner`` is the one object the control plane holds to sign; it never enters a sandbox.
Loading the private key from its file (plain PEM or cosign's encrypted format) lives in
``trust/cosignkey.py``.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from nanodistro.errors import KeyLoadError

__all__ = [
    "EcdsaSigner",
    "generate_signer",
    "key_id",
    "load_public_key",
    "public_key_from_pem",
    "verify_signature",
]


@dataclass(frozen=True)
class EcdsaSigner:
    """A P-256 private key with the identity its signatures carry."""

    private_key: ec.EllipticCurvePrivateKey

    @property
    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def keyid(self) -> str:
        return key_id(self.public_pem)

    def sign(self, data: bytes) -> bytes:
        """DER-encoded ECDSA signature over SHA-256(data)."""
        return self.private_key.sign(data, ec.ECDSA(hashes.SHA256()))

    def private_pem(self) -> bytes:
        """Unencrypted PKCS#8 PEM (for tests and for re-encrypting; never logged)."""
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def generate_signer() -> EcdsaSigner:
    """A fresh P-256 key."""
    return EcdsaSigner(ec.generate_private_key(ec.SECP256R1()))


def key_id(public_pem: bytes) -> str:
    """SHA-256 hex of the public key's DER encoding: a stable id for DSSE ``keyid``."""
    key = public_key_from_pem(public_pem, where="public key")
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def public_key_from_pem(pem: bytes, *, where: str) -> ec.EllipticCurvePublicKey:
    """Parse a PEM SPKI public key; it must be ECDSA on P-256."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as error:
        raise KeyLoadError(f"not a PEM public key ({error})", where=where) from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise KeyLoadError("expected an ECDSA P-256 public key (cosign's key type)", where=where)
    return key


def load_public_key(path: Path) -> bytes:
    """Read and check a ``cosign.pub``-style file; returns its PEM bytes."""
    path = Path(path)
    try:
        pem = path.read_bytes()
    except OSError as error:
        raise KeyLoadError(f"cannot read public key ({error.strerror})", where=str(path)) from None
    public_key_from_pem(pem, where=str(path))
    return pem


def verify_signature(public_pem: bytes, data: bytes, signature: bytes | str) -> bool:
    """True when ``signature`` (DER bytes, or their base64 text) signs ``data`` under the key."""
    if isinstance(signature, str):
        try:
            signature = base64.b64decode(signature, validate=True)
        except ValueError:
            return False
    key = public_key_from_pem(public_pem, where="public key")
    try:
        key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True
