"""What the image assembler needs from one ``.apk``: metadata, data entries, scripts, members.

Verification follows apko (pkg/apk/apk/package_getter.go): the control member's SHA-1 must equal
the index ``C:`` identity and the data member's SHA-256 must equal ``.PKGINFO datahash``; package
signatures are not needed because trust flows from the signed index.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from nanodistro.errors import ChecksumError
from nanodistro.formats.apk import read_apk
from nanodistro.formats.pkginfo import PackageInfo
from nanodistro.formats.tarball import TarEntry


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive, as in an HTTP Range header

    def header(self) -> str:
        return f"bytes={self.start}-{self.end}"


@dataclass
class ApkFile:
    info: PackageInfo
    identity: str  # "Q1" + b64 sha1(control member)
    entries: list[TarEntry]  # data tar entries, in archive order
    scripts: dict[str, bytes]  # ".post-install" -> content
    signature_range: ByteRange | None
    control_range: ByteRange
    data_range: ByteRange
    signature_sha1: bytes | None
    control_sha1: bytes
    data_sha256: bytes
    size: int

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def version(self) -> str:
        return self.info.version


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def open_apk(data: bytes, *, where: str, expected_identity: str | None = None) -> ApkFile:
    """Parse (``formats.apk.read_apk``) and verify an APK v2 file held in memory."""
    pkg = read_apk(data, where=where)
    identity = pkg.identity
    if expected_identity and identity != expected_identity:
        raise ChecksumError(
            f"package identity {identity} differs from the index/lock checksum {expected_identity}",
            where=where,
        )
    if pkg.datahash_ok is False:
        raise ChecksumError("data member sha256 differs from .PKGINFO datahash", where=where)
    signature = pkg.signature
    return ApkFile(
        info=pkg.info,
        identity=identity,
        entries=pkg.entries,
        scripts=pkg.scripts,
        signature_range=ByteRange(signature.offset, signature.end) if signature else None,
        control_range=ByteRange(pkg.control.offset, pkg.control.end),
        data_range=ByteRange(pkg.data.offset, pkg.data.end),
        signature_sha1=hashlib.sha1(signature.raw).digest() if signature else None,
        control_sha1=hashlib.sha1(pkg.control.raw).digest(),
        data_sha256=pkg.data.sha256,
        size=len(data),
    )
