"""cosign's key files: ``cosign.key`` (password-encrypted P-256 private key) and ``cosign.pub``.

The private key file is what ``cosign generate-key-pair`` writes and ``cosign sign --key`` reads:
a PEM block labelled ``ENCRYPTED SIGSTORE PRIVATE KEY`` (older cosign: ``ENCRYPTED COSIGN PRIVATE
KEY``) whose body is JSON (sigstore's cryptoutils, after go-securesystemslib's ``encrypted``)::

    {"kdf": {"name": "scrypt", "params": {"N": 65536, "r": 8, "p": 1}, "salt": <b64 32 bytes>},
     "cipher": {"name": "nacl/secretbox", "nonce": <b64 24 bytes>},
     "ciphertext": <b64 secretbox(PKCS#8 DER)>}

The secretbox key is scrypt(password, salt, N, r, p) with 32 output bytes. The public key is a
plain PEM SubjectPublicKeyInfo. Plain (unencrypted) PKCS#8 and SEC1 PEM private keys load too, so a
key made with openssl works.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from pathlib import Path

import nacl.exceptions
import nacl.secret
import nacl.utils
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from nanodistro.errors import KeyLoadError
from nanodistro.trust.ecdsa import EcdsaSigner, generate_signer
from nanodistro.util.atomic import atomic_write_bytes

__all__ = [
    "PASSWORD_ENV",
    "decrypt_private_key",
    "encrypt_private_key",
    "generate_key_pair",
    "load_signer",
    "resolve_password",
]

PASSWORD_ENV = "COSIGN_PASSWORD"
_LABEL = "ENCRYPTED SIGSTORE PRIVATE KEY"
_LABELS = (_LABEL, "ENCRYPTED COSIGN PRIVATE KEY")
# cosign's (and securesystemslib's) defaults.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 65536, 8, 1
_SALT_BYTES = 32
# A key file chooses its own scrypt cost; bound it so a hostile file cannot make loading take
# gigabytes of memory or hours (cosign's own cost is well inside: 64 MiB).
_MAX_SCRYPT_MEMORY = 1 << 30
_MAX_SCRYPT_P = 16
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$")
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)


def resolve_password(password: bytes | None) -> bytes:
    """``password`` itself, else ``$COSIGN_PASSWORD`` (as cosign reads it), else empty."""
    if password is not None:
        return password
    return os.environb.get(PASSWORD_ENV.encode(), b"")


def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password, salt=salt, n=n, r=r, p=p, maxmem=_MAX_SCRYPT_MEMORY + (1 << 20), dklen=32
    )


def _pem(label: str, der: bytes) -> bytes:
    body = base64.b64encode(der).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return (
        "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"]) + "\n"
    ).encode()


def encrypt_private_key(signer: EcdsaSigner, password: bytes) -> bytes:
    """The ``ENCRYPTED SIGSTORE PRIVATE KEY`` PEM of ``signer``'s key under ``password``."""
    der = signer.private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    salt = nacl.utils.random(_SALT_BYTES)
    nonce = nacl.utils.random(nacl.secret.SecretBox.NONCE_SIZE)
    box = nacl.secret.SecretBox(_scrypt(password, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P))
    sealed = box.encrypt(der, nonce).ciphertext  # without the nonce prefix, as Go's Seal
    document = {
        "kdf": {
            "name": "scrypt",
            "params": {"N": _SCRYPT_N, "r": _SCRYPT_R, "p": _SCRYPT_P},
            "salt": base64.b64encode(salt).decode(),
        },
        "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
        "ciphertext": base64.b64encode(sealed).decode(),
    }
    return _pem(_LABEL, json.dumps(document, separators=(",", ":")).encode())


def _field(value: object, path: str, kind: type, where: str) -> object:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise KeyLoadError(f"{path} missing or not a {kind.__name__}", where=where)
    return value


def _b64field(value: object, path: str, where: str) -> bytes:
    text = _field(value, path, str, where)
    assert isinstance(text, str)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise KeyLoadError(f"{path} is not valid base64", where=where) from None


def decrypt_private_key(body: bytes, password: bytes, *, where: str) -> bytes:
    """PKCS#8 DER from the JSON body of an encrypted cosign key; wrong password -> KeyLoadError."""
    try:
        document = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise KeyLoadError("encrypted key body is not JSON", where=where) from None
    if not isinstance(document, dict):
        raise KeyLoadError("encrypted key body is not a JSON object", where=where)
    kdf = _field(document.get("kdf"), "kdf", dict, where)
    cipher = _field(document.get("cipher"), "cipher", dict, where)
    assert isinstance(kdf, dict) and isinstance(cipher, dict)
    if kdf.get("name") != "scrypt":
        raise KeyLoadError(f"kdf.name is {kdf.get('name')!r}, expected 'scrypt'", where=where)
    if cipher.get("name") != "nacl/secretbox":
        raise KeyLoadError(
            f"cipher.name is {cipher.get('name')!r}, expected 'nacl/secretbox'", where=where
        )
    params = _field(kdf.get("params"), "kdf.params", dict, where)
    assert isinstance(params, dict)
    n, r, p = (_field(params.get(k), f"kdf.params.{k}", int, where) for k in ("N", "r", "p"))
    assert isinstance(n, int) and isinstance(r, int) and isinstance(p, int)
    if (
        n < 2
        or n & (n - 1)
        or r < 1
        or not 1 <= p <= _MAX_SCRYPT_P
        or 128 * r * n > _MAX_SCRYPT_MEMORY
    ):
        raise KeyLoadError(
            f"scrypt parameters N={n} r={r} p={p} out of range (N a power of two, "
            f"128*r*N at most {_MAX_SCRYPT_MEMORY} bytes, p at most {_MAX_SCRYPT_P})",
            where=where,
        )
    salt = _b64field(kdf.get("salt"), "kdf.salt", where)
    nonce = _b64field(cipher.get("nonce"), "cipher.nonce", where)
    ciphertext = _b64field(document.get("ciphertext"), "ciphertext", where)
    if len(nonce) != nacl.secret.SecretBox.NONCE_SIZE:
        raise KeyLoadError(f"cipher.nonce must be 24 bytes, got {len(nonce)}", where=where)
    box = nacl.secret.SecretBox(_scrypt(password, salt, n, r, p))
    try:
        return box.decrypt(ciphertext, nonce)
    except nacl.exceptions.CryptoError:
        raise KeyLoadError(
            f"cannot decrypt the private key: wrong password (set ${PASSWORD_ENV}) or corrupt file",
            where=where,
        ) from None


def _signer(key: object, where: str) -> EcdsaSigner:
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise KeyLoadError("expected an ECDSA P-256 private key (cosign's key type)", where=where)
    return EcdsaSigner(key)


def load_signer(path: Path, password: bytes | None = None) -> EcdsaSigner:
    """Load ``cosign.key`` (either encrypted label) or a plain PKCS#8 / SEC1 PEM private key."""
    path = Path(path)
    where = str(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise KeyLoadError(f"cannot read private key ({error.strerror})", where=where) from None
    match = _PEM_BLOCK.search(data)
    if match is None:
        raise KeyLoadError("not a PEM private key", where=where)
    label = match.group(1).decode()
    if label in _LABELS:
        try:
            body = base64.b64decode(b"".join(match.group(2).split()), validate=True)
        except (binascii.Error, ValueError):
            raise KeyLoadError("PEM body is not valid base64", where=where) from None
        der = decrypt_private_key(body, resolve_password(password), where=where)
        try:
            key = serialization.load_der_private_key(der, password=None)
        except (ValueError, TypeError) as error:
            raise KeyLoadError(f"decrypted key is not PKCS#8 ({error})", where=where) from None
        return _signer(key, where)
    if label in ("PRIVATE KEY", "EC PRIVATE KEY"):
        try:
            key = serialization.load_pem_private_key(match.group(0), password=None)
        except (ValueError, TypeError) as error:
            raise KeyLoadError(f"not a usable private key ({error})", where=where) from None
        return _signer(key, where)
    raise KeyLoadError(
        f"PEM label {label!r} is not a private key this tool reads (expected {_LABEL!r}, "
        "'PRIVATE KEY' or 'EC PRIVATE KEY')",
        where=where,
    )


def generate_key_pair(
    out_dir: Path, name: str = "cosign", password: bytes | None = None
) -> tuple[Path, Path]:
    """Write ``out_dir/NAME.key`` (encrypted, 0600) and ``NAME.pub``; refuses to overwrite.

    ``password`` None means ``$COSIGN_PASSWORD`` or empty, as for ``cosign generate-key-pair``.
    """
    if not _NAME.match(name):
        raise KeyLoadError(
            "key name must start with a letter or digit and use only letters, digits, '._@+-'",
            field="name",
            where=name,
        )
    out_dir = Path(out_dir)
    private_path, public_path = out_dir / f"{name}.key", out_dir / f"{name}.pub"
    for path in (private_path, public_path):
        if path.exists():
            raise KeyLoadError("already exists, refusing to overwrite", where=str(path))
    signer = generate_signer()
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(
        private_path, encrypt_private_key(signer, resolve_password(password)), mode=0o600
    )
    atomic_write_bytes(public_path, signer.public_pem, mode=0o644)
    return private_path, public_path
