"""What a package must satisfy before ``publish`` (or ``index``) signs it into a trusted index.

An index signature vouches for every package it names, and other clients (apk-tools, apko)
trust it without looking further. So a package is admitted only if:

* its signature verifies against the trusted keys: the keyring given, plus the public part of
  the key that signs the index (so by default only our own packages are admitted);
* it has a ``datahash`` and its data member matches it (the index identity covers the control
  member only, so without a datahash the data would be bound to nothing the index signs);
* every file matches its ``APK-TOOLS.checksum.SHA1``;
* no entry could land outside the root or is a device node: the rules ``extract`` applies
  (``formats.tarball.validate_entries``: ``..``, absolute paths, symlinks climbing above the
  root, hardlinks to paths that are unsafe or not earlier files, ``chr``/``blk`` nodes).

Each refusal names the package file and the reason.
"""

from __future__ import annotations

from nanodistro.errors import ChecksumError
from nanodistro.formats.apk import ApkPackage, read_apk, verify_apk
from nanodistro.formats.signature import Keyring
from nanodistro.formats.tarball import validate_entries

__all__ = ["admit_package"]


def admit_package(data: bytes, *, where: str, trusted: Keyring) -> ApkPackage:
    """Parse and check ``data`` (the file at ``where``); raises a ``NanodistroError`` naming it."""
    pkg = read_apk(data, where=where)
    verify_apk(pkg, trusted)  # signature, datahash when present, per-file SHA-1s
    if not pkg.info.datahash:
        raise ChecksumError(
            "package has no datahash: the signed index would not cover its data "
            "(rebuild it with a current packager)",
            where=where,
        )
    validate_entries(pkg.entries, where, allow_devices=False)
    return pkg
