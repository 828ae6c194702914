"""APK v2 package codec: ``signature? || control || data`` gzip members (reference/formats.md §1).

Reading::

    pkg = read_apk(data, where="foo-1.0-r0.apk")      # FormatError on malformed input
    result = verify_apk(pkg, keyring)                  # SignatureError / ChecksumError
    pkg, result = verify_apk_bytes(data, keyring, where=...)   # apk-tools order: trust first

``pkg.info`` is a ``PackageInfo`` with ``checksum`` (identity ``Q1`` + base64 SHA-1 of the
control member, the APKINDEX ``C:``) and ``file_size`` set. ``pkg.signature``/``pkg.control``/
``pkg.data`` are ``Segment``s with byte ranges and digests (what a lock file records).

Writing follows §1.9: data tar with end-of-archive and per-file ``APK-TOOLS.checksum.SHA1``,
``datahash = sha256(data member)``, control tar (``.PKGINFO`` first, no end-of-archive), then an
RSA256 signature over the control member. Same inputs give the same bytes.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from nanodistro.errors import ChecksumError, FormatError, SignatureError
from nanodistro.formats import pgzip
from nanodistro.formats.pkginfo import PackageInfo, format_pkginfo, parse_pkginfo, q1_checksum
from nanodistro.formats.signature import (
    Keyring,
    SignatureEntry,
    SigningKey,
    VerifiedSignature,
    read_signature_entries,
    require_trusted,
    signature_member,
    split_signature,
    verify_signed,
)
from nanodistro.formats.tarball import (
    DEFAULT_MAX_INFLATED,
    TarEntry,
    gzip_member,
    gzip_members,
    read_tar,
    validate_entries,
    write_tar,
)

#: Control scripts apk-tools runs (``AT:src/package.c`` ``apk_script_types``).
SCRIPT_NAMES = (
    ".pre-install",
    ".post-install",
    ".pre-deinstall",
    ".post-deinstall",
    ".pre-upgrade",
    ".post-upgrade",
    ".trigger",
)

SegmentName = Literal["signature", "control", "data"]


@dataclass(frozen=True)
class Segment:
    """Compressed bytes of one package segment and where they sit in the file."""

    name: SegmentName
    raw: bytes
    offset: int

    @property
    def end(self) -> int:
        """Inclusive index of the last byte."""
        return self.offset + len(self.raw) - 1

    @property
    def range(self) -> str:
        """HTTP range of the segment as apko lock files record it, e.g. ``bytes=0-646``."""
        return f"bytes={self.offset}-{self.end}"

    @functools.cached_property
    def sha256(self) -> bytes:
        """SHA-256 of the segment, computed once (datahash check, lock files, image reads)."""
        return hashlib.sha256(self.raw).digest()

    def digest(self, algorithm: Literal["sha1", "sha256"]) -> bytes:
        if algorithm == "sha256":
            return self.sha256
        return hashlib.new(algorithm, self.raw).digest()

    def checksum(self, algorithm: Literal["sha1", "sha256"]) -> str:
        """``sha1-<base64>`` / ``sha256-<base64>`` (apko lock file form)."""
        return f"{algorithm}-{base64.b64encode(self.digest(algorithm)).decode()}"


@dataclass
class ApkPackage:
    """A parsed (not yet verified) APK v2 package."""

    where: str
    info: PackageInfo
    signatures: list[SignatureEntry]
    signature: Segment | None
    control: Segment
    data: Segment
    control_files: dict[str, bytes]
    entries: list[TarEntry]
    #: sha256(data member) == .PKGINFO datahash; None when the package has no datahash.
    datahash_ok: bool | None
    control_entries: list[TarEntry] = field(default_factory=list)

    @property
    def identity(self) -> str:
        return identity(self.control.raw)

    @property
    def scripts(self) -> dict[str, bytes]:
        return {n: v for n, v in self.control_files.items() if n in SCRIPT_NAMES}

    @property
    def extra_control(self) -> dict[str, bytes]:
        """Control files other than ``.PKGINFO`` and scripts (e.g. melange's ``.melange.yaml``)."""
        return {
            n: v for n, v in self.control_files.items() if n != ".PKGINFO" and n not in SCRIPT_NAMES
        }


@dataclass(frozen=True)
class VerifyResult:
    keyname: str
    algorithm: str
    #: What the signature covers: the control member (datahash packages) or control + data.
    signed: Literal["control", "control+data"]
    datahash_checked: bool
    files_checked: int


def identity(control_member: bytes) -> str:
    """Package identity (APKINDEX ``C:``): ``Q1`` + base64(SHA-1(control member)), §1.8."""
    return q1_checksum(hashlib.sha1(control_member).digest())


def read_apk(data: bytes, *, where: str, max_inflated: int = DEFAULT_MAX_INFLATED) -> ApkPackage:
    """Split and parse a package. Raises ``FormatError`` (naming ``where``) on malformed input."""
    members = gzip_members(data, where=where, max_inflated=max_inflated)
    index = 0
    signatures: list[SignatureEntry] = []
    signature_segment: Segment | None = None
    first = read_signature_entries(members[0].inflated, where=f"{where}: signature")
    if first is not None:
        signatures = first
        signature_segment = Segment("signature", members[0].raw, members[0].offset)
        index = 1
    if index >= len(members):
        raise FormatError("no control segment after the signature", where=where)
    control_member = members[index]
    control_segment = Segment("control", control_member.raw, control_member.offset)
    control_entries = read_tar(control_member.inflated, where=f"{where}: control")
    control_files: dict[str, bytes] = {}
    for entry in control_entries:
        # AT: control entries are dot-files without '/'; anything else starts the data section.
        if not entry.path.startswith(".") or "/" in entry.path:
            raise FormatError(
                f"control segment holds non-control entry {entry.path!r} "
                "(control and data must be separate gzip members)",
                where=where,
            )
        if entry.path.startswith(".SIGN."):
            raise FormatError(f"signature entry {entry.path!r} inside control", where=where)
        if entry.type != "file":
            raise FormatError(f"control entry {entry.path!r} is not a regular file", where=where)
        control_files[entry.path] = entry.data
    if ".PKGINFO" not in control_files:
        raise FormatError("no .PKGINFO in the control segment", where=where)
    if ".INSTALL" in control_files:
        raise FormatError(".INSTALL scripts (APK v1) are not supported", where=where)
    try:
        text = control_files[".PKGINFO"].decode("utf-8")
    except UnicodeDecodeError as error:
        raise FormatError(f"not UTF-8 ({error.reason})", where=f"{where}: .PKGINFO") from None
    info = parse_pkginfo(text, where=f"{where}: .PKGINFO")
    if index + 1 >= len(members):
        raise FormatError("no data segment after the control segment", where=where)
    data_members = members[index + 1 :]
    data_segment = Segment(
        "data",
        data[data_members[0].offset : data_members[-1].offset + len(data_members[-1].raw)],
        data_members[0].offset,
    )
    entries = read_tar(b"".join(m.inflated for m in data_members), where=f"{where}: data")
    for entry in entries:
        if entry.path.startswith(".SIGN.") or entry.path == ".PKGINFO":
            raise FormatError(f"control entry {entry.path!r} in the data segment", where=where)
    datahash_ok: bool | None = None
    if info.datahash:
        datahash_ok = data_segment.sha256.hex() == info.datahash.strip().lower()
    info.checksum = identity(control_segment.raw)
    info.file_size = len(data)
    return ApkPackage(
        where=where,
        info=info,
        signatures=signatures,
        signature=signature_segment,
        control=control_segment,
        data=data_segment,
        control_files=control_files,
        entries=entries,
        datahash_ok=datahash_ok,
        control_entries=control_entries,
    )


def verify_apk(pkg: ApkPackage, keyring: Keyring) -> VerifyResult:
    """Verify signature, ``datahash`` and per-file SHA-1s, as apk-tools does (§1.4).

    Raises ``UntrustedSignatureError``/``BadSignatureError`` (both ``SignatureError``) or
    ``ChecksumError``, each naming the package and what differed.
    """
    if pkg.info.datahash:
        signed_bytes, covered = pkg.control.raw, "control"
    else:
        signed_bytes, covered = pkg.control.raw + pkg.data.raw, "control+data"
    verified: VerifiedSignature = verify_signed(
        pkg.signatures, signed_bytes, keyring, where=pkg.where
    )
    if pkg.info.datahash and not pkg.datahash_ok:
        actual = pkg.data.sha256.hex()
        raise ChecksumError(
            f"data segment sha256 {actual} does not match datahash {pkg.info.datahash}",
            where=pkg.where,
        )
    checked = check_file_checksums(pkg.entries, where=pkg.where)
    return VerifyResult(
        keyname=verified.keyname,
        algorithm=verified.algorithm,
        signed=covered,  # type: ignore[arg-type]
        datahash_checked=bool(pkg.info.datahash),
        files_checked=checked,
    )


def check_file_checksums(entries: Sequence[TarEntry], *, where: str) -> int:
    """Compare each ``APK-TOOLS.checksum.SHA1`` with the content; returns how many were checked."""
    checked = 0
    for entry in entries:
        if entry.pax_checksum is None:
            continue
        actual = entry.content_sha1()
        if actual is None:
            continue
        if actual != entry.pax_checksum:
            raise ChecksumError(
                f"{entry.path!r}: content sha1 {actual} does not match the recorded "
                f"APK-TOOLS.checksum.SHA1 {entry.pax_checksum}",
                where=where,
            )
        checked += 1
    return checked


def verify_apk_bytes(
    data: bytes, keyring: Keyring, *, where: str
) -> tuple[ApkPackage, VerifyResult]:
    """Read and verify a package file, checking trust before anything else (like apk-tools).

    An unsigned file, or one signed only by unknown keys, raises ``UntrustedSignatureError``
    even if the rest of it is not a package.
    """
    entries, _ = split_signature(data, where=where)
    require_trusted(entries, keyring, where=where)
    pkg = read_apk(data, where=where)
    return pkg, verify_apk(pkg, keyring)


def installed_size(entries: Sequence[TarEntry], *, has_scripts: bool = False) -> int:
    """abuild's ``size``: sum of regular file sizes (hardlinks counted once); 1 if that is 0
    but the package has content or scripts (``AB:abuild.in`` ``prepare_metafiles``)."""
    total = sum(entry.size for entry in entries if entry.type == "file")
    if total == 0 and (entries or has_scripts):
        return 1
    return total


def _control_name(name: str, *, where: str) -> str:
    name = name if name.startswith(".") else f".{name}"
    if "/" in name or name in (".PKGINFO", ".INSTALL") or name.startswith(".SIGN."):
        raise FormatError(f"invalid control file name {name!r}", where=where)
    return name


def write_apk(
    info: PackageInfo,
    entries: Sequence[TarEntry],
    *,
    key: SigningKey | None,
    source_date_epoch: int,
    scripts: Mapping[str, bytes] | None = None,
    extra_control: Mapping[str, bytes] | None = None,
    algorithm: str = "RSA256",
    generator: str = "nanodistro",
    threads: int | None = None,
) -> bytes:
    """Build a package as §1.9 describes; returns ``S || C || D`` (or ``C || D`` unsigned).

    ``entries`` are written in the given order (sort them with ``tarball.sort_key``); their
    mtimes are the caller's (use ``source_date_epoch``). ``info.installed_size`` and
    ``info.datahash`` are computed; ``info.builddate`` defaults to ``source_date_epoch``.
    ``scripts`` keys are script names (``post-install`` or ``.post-install``). The data member
    is compressed in ``pgzip``'s blocks on ``threads`` threads (default: all CPUs), which
    never changes its bytes.
    """
    where = f"{info.name or '?'}-{info.version or '?'}.apk"
    for required in ("name", "version", "arch"):
        if not getattr(info, required):
            raise FormatError(f"package {required} is required", where=where)
    validate_entries(entries, where, allow_devices=True)
    script_files = {_control_name(n, where=where): v for n, v in (scripts or {}).items()}
    for name in script_files:
        if name not in SCRIPT_NAMES:
            raise FormatError(
                f"unknown script {name!r} (expected one of {', '.join(SCRIPT_NAMES)})",
                where=where,
            )
    other_files = {_control_name(n, where=where): v for n, v in (extra_control or {}).items()}
    if overlap := set(script_files) & set(other_files):
        raise FormatError(f"control files given twice: {sorted(overlap)}", where=where)

    data_tar = write_tar(entries, end_of_archive=True, apk_checksums=True)
    data = pgzip.compress_hashed(data_tar, level=9, threads=threads)
    data_member = data.gz
    meta = info.copy()
    meta.installed_size = installed_size(entries, has_scripts=bool(script_files))
    meta.datahash = data.gz_sha256
    if meta.builddate is None and source_date_epoch:
        meta.builddate = source_date_epoch
    meta.checksum = None
    meta.file_size = None
    pkginfo = format_pkginfo(meta, generator=generator).encode("utf-8")

    def control_entry(name: str, content: bytes, mode: int) -> TarEntry:
        return TarEntry(name, "file", mode=mode, mtime=source_date_epoch, data=content)

    # melange order: .PKGINFO first, then the other control files lexically.
    others = [control_entry(n, v, 0o755) for n, v in script_files.items()]
    others += [control_entry(n, v, 0o644) for n, v in other_files.items()]
    control = [control_entry(".PKGINFO", pkginfo, 0o644), *sorted(others, key=lambda e: e.path)]
    control_member = gzip_member(write_tar(control, end_of_archive=False))
    if key is None:
        return control_member + data_member
    signature = signature_member(key, control_member, algorithm, mtime=source_date_epoch)
    return signature + control_member + data_member


def sign_unsigned_apk(
    data: bytes, key: SigningKey, *, where: str, algorithm: str = "RSA256"
) -> bytes:
    """Sign a package written with ``key=None``: the signature member over its control member,
    prepended, with the mtime ``write_apk`` gives it (``builddate``, the build's
    SOURCE_DATE_EPOCH) — the same bytes as writing it with ``key`` in the first place. A
    package that already carries a signature segment is refused (``SignatureError``): whoever
    sent it was not meant to hold a key, and its signature is not ours to keep or replace."""
    package = read_apk(data, where=where)
    if package.signature is not None:
        names = ", ".join(s.name for s in package.signatures) or "an empty signature segment"
        raise SignatureError(
            f"expected an unsigned package, found a signature segment ({names})", where=where
        )
    if package.datahash_ok is not True:
        raise ChecksumError(
            "expected a package whose .PKGINFO datahash matches its data segment", where=where
        )
    mtime = package.info.builddate or 0
    return signature_member(key, package.control.raw, algorithm, mtime=mtime) + data


__all__ = [
    "SCRIPT_NAMES",
    "ApkPackage",
    "Segment",
    "SignatureError",
    "VerifyResult",
    "check_file_checksums",
    "identity",
    "installed_size",
    "read_apk",
    "sign_unsigned_apk",
    "verify_apk",
    "verify_apk_bytes",
    "write_apk",
]
