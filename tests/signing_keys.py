"""Throwaway APK signing keys for tests (generated per run, never committed)."""

from __future__ import annotations

from pathlib import Path

from nanodistro.formats.signature import SigningKey
from nanodistro.trust.keys import generate_key, load_keyring, load_signing_key

KeyAndKeyring = tuple[SigningKey, dict[str, bytes]]


def make_key(directory: Path, name: str = "test") -> KeyAndKeyring:
    """A fresh 2048-bit RSA key written to ``directory``, and the keyring of that directory."""
    private, _ = generate_key(name, directory, bits=2048)
    return load_signing_key(private), load_keyring(directory)
