"""APK signing keys: generation, loading a signing key, loading a keyring.

Files follow abuild/melange conventions (reference/formats.md §1.4): private key PEM PKCS#1
(``RSA PRIVATE KEY``, mode 0600) named ``NAME-<8 hex>.rsa``, public key PEM SPKI next to it as
``NAME-<8 hex>.rsa.pub``. The 8 hex digits are the first 8 of SHA-256 over the public key's DER
encoding, so the name is stable for a key and differs between keys (abuild uses the creation
time in hex instead; only uniqueness matters to apk). Signatures carry the public file name.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

from nanodistro.errors import KeyLoadError
from nanodistro.formats.rsa_pure import parse_rsa_public_key
from nanodistro.formats.signature import SigningKey, public_pem_from_private, sign, verify

# cryptography is imported where used: loading a keyring of plain RSA keys (resolve) reads
# them with formats/rsa_pure, and importing cryptography costs 20-50 ms (issue 18).

__all__ = [
    "MIN_BITS",
    "SigningKey",
    "generate_key",
    "key_fingerprint",
    "load_keyring",
    "load_signing_key",
]

MIN_BITS = 2048  # melange keygen refuses smaller keys
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$")


def key_fingerprint(public_pem: bytes) -> str:
    """First 8 hex digits of SHA-256 over the public key DER (the file name suffix)."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_public_key(public_pem)
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()[:8]


def generate_key(name: str, out_dir: Path, bits: int = 4096) -> tuple[Path, Path]:
    """Create ``out_dir/NAME-<8 hex>.rsa`` (0600) and ``.rsa.pub``; returns both paths.

    Refuses to overwrite existing files.
    """
    if not _NAME.match(name):
        raise KeyLoadError(
            "key name must start with a letter or digit and use only letters, digits, '._@+-'",
            field="name",
            where=name,
        )
    if bits < MIN_BITS:
        raise KeyLoadError(f"RSA keys need at least {MIN_BITS} bits, got {bits}", field="bits")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    out_dir = Path(out_dir)
    private_path = out_dir / f"{name}-{key_fingerprint(public_pem)}.rsa"
    public_path = private_path.with_name(private_path.name + ".pub")
    for path in (private_path, public_path):
        if path.exists():
            raise KeyLoadError("already exists, refusing to overwrite", where=str(path))
    # Imported here: it pulls tempfile and shutil, which loading keys (resolve) never needs.
    from nanodistro.util.atomic import atomic_write_bytes

    atomic_write_bytes(private_path, private_pem, mode=0o600)
    atomic_write_bytes(public_path, public_pem, mode=0o644)
    return private_path, public_path


def load_signing_key(path: Path) -> SigningKey:
    """Load a private key; its signatures name ``<basename>.pub`` (melange's convention).

    If the ``.pub`` file exists next to it, it must match the private key.
    """
    path = Path(path)
    try:
        private_pem = path.read_bytes()
    except FileNotFoundError:
        raise KeyLoadError(
            "no such signing key; create one with 'nanodistro keygen --out DIR' (a workspace "
            "keeps it in its keys/ directory)",
            where=str(path),
        ) from None
    except OSError as error:
        raise KeyLoadError(f"cannot read signing key ({error.strerror})", where=str(path)) from None
    public_pem_from_private(private_pem, where=str(path))  # must be an RSA private key
    public_path = path.with_name(path.name + ".pub")
    key = SigningKey(private_pem=private_pem, keyname=public_path.name)
    if public_path.is_file():
        existing = public_path.read_bytes()
        probe = b"nanodistro key pair check"
        try:
            matches = verify(existing, probe, sign(private_pem, probe), "RSA256")
        except KeyLoadError:
            matches = False
        if not matches:
            raise KeyLoadError(
                f"{public_path.name} does not belong to this private key", where=str(path)
            )
    return key


def load_keyring(sources: Path | Iterable[Path]) -> dict[str, bytes]:
    """Public keys by file name, from a directory (every ``*.pub``) and/or individual files.

    Each key must parse as an RSA public key; the error names the file otherwise.
    """
    paths: list[tuple[Path, bool]] = []  # (file, found by scanning a directory)
    for source in [sources] if isinstance(sources, (str, Path)) else sources:
        source = Path(source)
        if source.is_dir():
            paths.extend((p, True) for p in sorted(source.iterdir()) if p.name.endswith(".pub"))
        elif source.is_file():
            paths.append((source, False))
        else:
            raise KeyLoadError("no such keyring directory or key file", where=str(source))
    keyring: dict[str, bytes] = {}
    for path, scanned in paths:
        try:
            pem = path.read_bytes()
        except OSError as error:
            raise KeyLoadError(f"cannot read key ({error.strerror})", where=str(path)) from None
        if parse_rsa_public_key(pem) is not None:  # a plain RSA SPKI: no cryptography needed
            keyring[path.name] = pem
            continue
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec, rsa

        try:
            key = serialization.load_pem_public_key(pem)
        except (ValueError, TypeError) as error:
            raise KeyLoadError(f"not a PEM public key ({error})", where=str(path)) from None
        if scanned and isinstance(key, ec.EllipticCurvePublicKey):
            continue  # the workspace's cosign.pub (image/provenance signatures) lives in keys/ too
        if not isinstance(key, rsa.RSAPublicKey):
            raise KeyLoadError("not an RSA public key", where=str(path))
        keyring[path.name] = pem
    return keyring
