"""Throwaway keys and certificates for tests (generated per run, never committed)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from nanodistro.formats.signature import SigningKey
from nanodistro.trust.keys import generate_key, load_keyring, load_signing_key

KeyAndKeyring = tuple[SigningKey, dict[str, bytes]]


def make_key(directory: Path, name: str = "test") -> KeyAndKeyring:
    """A fresh 2048-bit RSA key written to ``directory``, and the keyring of that directory."""
    private, _ = generate_key(name, directory, bits=2048)
    return load_signing_key(private), load_keyring(directory)


def self_signed(
    common_name: str,
    *,
    start: datetime.datetime | None = None,
    days: int = 365,
    ca: bool = False,
    san: Sequence[x509.GeneralName] = (),
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A fresh P-256 key and a self-signed certificate for it, valid from ``start`` (default: a
    day ago) for ``days``; ``ca`` adds the critical CA basic constraint, ``san`` the subject
    alternative names (what a TLS client checks)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    if start is None:
        start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
    )
    if ca:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True
        )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return key, builder.sign(key, hashes.SHA256())


def self_signed_cert(common_name: str, *, days: int = 365, ca: bool = False) -> bytes:
    """A self-signed certificate in PEM valid from 2024-01-01 (see :func:`self_signed`)."""
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    _, cert = self_signed(common_name, start=start, days=days, ca=ca)
    return cert.public_bytes(serialization.Encoding.PEM)
