"""cosign key files: ours are used by the real cosign, cosign's are loaded by us."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from nanodistro.errors import KeyLoadError
from nanodistro.trust.cosignkey import encrypt_private_key, generate_key_pair, load_signer
from nanodistro.trust.ecdsa import generate_signer, verify_signature
from needs_tools import require_tools
from registry_server import find_tool


def _cosign(args: list[str], cwd: Path, password: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COSIGN_PASSWORD": password}
    return subprocess.run(
        [find_tool("cosign"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_generated_pair_format_and_mode(tmp_path: Path) -> None:
    private, public = generate_key_pair(tmp_path, password=b"pw")
    assert (private.name, public.name) == ("cosign.key", "cosign.pub")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    text = private.read_text()
    assert text.startswith("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    body = json.loads(base64.b64decode("".join(text.splitlines()[1:-1])))
    assert body["kdf"]["name"] == "scrypt"
    assert body["kdf"]["params"] == {"N": 65536, "r": 8, "p": 1}
    assert body["cipher"]["name"] == "nacl/secretbox"
    signer = load_signer(private, b"pw")
    assert signer.public_pem == public.read_bytes()
    with pytest.raises(KeyLoadError, match="refusing to overwrite"):
        generate_key_pair(tmp_path, password=b"pw")


def test_wrong_password_names_file(tmp_path: Path) -> None:
    private, _ = generate_key_pair(tmp_path, name="k", password=b"right")
    with pytest.raises(KeyLoadError, match="wrong password") as info:
        load_signer(private, b"wrong")
    assert str(private) in str(info.value)


def test_password_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSIGN_PASSWORD", "from-env")
    private, _ = generate_key_pair(tmp_path)
    assert load_signer(private, b"from-env").keyid
    monkeypatch.delenv("COSIGN_PASSWORD")
    with pytest.raises(KeyLoadError, match="wrong password"):
        load_signer(private)  # empty password now


def test_plain_pem_keys_load(tmp_path: Path) -> None:
    signer = generate_signer()
    pkcs8 = tmp_path / "pkcs8.pem"
    pkcs8.write_bytes(signer.private_pem())
    sec1 = tmp_path / "sec1.pem"
    sec1.write_bytes(
        signer.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    assert load_signer(pkcs8).keyid == load_signer(sec1).keyid == signer.keyid
    other = tmp_path / "p384.pem"
    other.write_bytes(
        ec.generate_private_key(ec.SECP384R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(KeyLoadError, match="P-256"):
        load_signer(other)


def test_old_cosign_label_loads(tmp_path: Path) -> None:
    signer = generate_signer()
    pem = encrypt_private_key(signer, b"x").replace(b"SIGSTORE", b"COSIGN")
    path = tmp_path / "old.key"
    path.write_bytes(pem)
    assert load_signer(path, b"x").keyid == signer.keyid


def test_hostile_scrypt_cost_refused(tmp_path: Path) -> None:
    """A key file asking for 2^30 * 8 * 128 bytes of scrypt memory is refused before deriving."""
    signer = generate_signer()
    text = encrypt_private_key(signer, b"x").decode()
    lines = text.splitlines()
    body = json.loads(base64.b64decode("".join(lines[1:-1])))
    body["kdf"]["params"]["N"] = 1 << 30
    encoded = base64.b64encode(json.dumps(body).encode()).decode()
    path = tmp_path / "hostile.key"
    path.write_text(f"{lines[0]}\n{encoded}\n{lines[-1]}\n")
    with pytest.raises(KeyLoadError, match=r"scrypt parameters .* out of range"):
        load_signer(path, b"x")


def test_cosign_uses_our_key_pair(tmp_path: Path) -> None:
    require_tools("cosign")
    private, public = generate_key_pair(tmp_path, password=b"s3cret")
    blob = tmp_path / "blob.txt"
    blob.write_bytes(b"hello cosign\n")
    signed = _cosign(
        ["sign-blob", "--yes", "--key", str(private), "--tlog-upload=false", str(blob)],
        tmp_path,
        "s3cret",
    )
    assert signed.returncode == 0, signed.stderr
    signature = signed.stdout.strip().splitlines()[-1]
    assert verify_signature(public.read_bytes(), blob.read_bytes(), signature)
    checked = _cosign(
        [
            "verify-blob",
            "--key",
            str(public),
            "--signature",
            signature_file(tmp_path, signature),
            "--insecure-ignore-tlog=true",
            str(blob),
        ],
        tmp_path,
        "",
    )
    assert checked.returncode == 0, checked.stderr
    refused = _cosign(
        ["sign-blob", "--yes", "--key", str(private), "--tlog-upload=false", str(blob)],
        tmp_path,
        "not-the-password",
    )
    assert refused.returncode != 0


def signature_file(directory: Path, signature: str) -> str:
    path = directory / "blob.sig"
    path.write_text(signature)
    return str(path)


def test_we_load_cosigns_key_pair(tmp_path: Path) -> None:
    require_tools("cosign")
    made = _cosign(["generate-key-pair"], tmp_path, "pw-from-cosign")
    assert made.returncode == 0, made.stderr
    signer = load_signer(tmp_path / "cosign.key", b"pw-from-cosign")
    assert signer.public_pem.strip() == (tmp_path / "cosign.pub").read_bytes().strip()
    with pytest.raises(KeyLoadError, match="wrong password"):
        load_signer(tmp_path / "cosign.key", b"nope")
