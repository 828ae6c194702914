"""apk's installed-package database ``lib/apk/db/installed`` plus ``scripts.tar`` names and
``triggers`` lines (reference/formats.md §3).

A record is an APKINDEX header (shared codec in ``apkindex``), the installed-only letters
``g r q s f``, then the file list: ``F:`` opens a directory block (``M:`` its ACL), ``R:`` a file
in it (``a:`` its ACL, ``Z:`` its digest). The writer emits apk-tools order (AT src/database.c
``apk_db_fdb_write``) so a database written by apk-tools is reproduced byte for byte.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from nanodistro.errors import FormatError
from nanodistro.formats.apk import SCRIPT_NAMES as _DOTTED_SCRIPT_NAMES
from nanodistro.formats.apkindex import (
    apply_header_line,
    finish_record,
    format_extra,
    format_record_header,
    index_record,
    parse_uint,
    split_letter_line,
    split_list_value,
)
from nanodistro.formats.pkginfo import PackageInfo, q1_checksum
from nanodistro.formats.tarball import TarEntry

DEFAULT_DIR_MODE = 0o755
DEFAULT_FILE_MODE = 0o644

# Script names apk runs; control-member names carry a leading dot (".post-install").
SCRIPT_NAMES = tuple(name.removeprefix(".") for name in _DOTTED_SCRIPT_NAMES)


@dataclass(frozen=True)
class Acl:
    """``uid:gid:mode[:xattrhash]``; mode is octal in the text (AT ``%o``, apko ``%04o``)."""

    uid: int = 0
    gid: int = 0
    mode: int = 0
    xattr_hash: str | None = None

    def format(self) -> str:
        text = f"{self.uid}:{self.gid}:{self.mode:o}"
        return f"{text}:{self.xattr_hash}" if self.xattr_hash else text

    @classmethod
    def parse(cls, value: str, *, where: str, line: int, field_name: str) -> Acl:
        parts = value.split(":", 3)
        if len(parts) < 3:
            raise FormatError(
                f"expected 'uid:gid:mode[:xattrhash]', got {value[:60]!r}",
                where=where,
                line=line,
                field=field_name,
            )
        uid = parse_uint(parts[0], where=where, line=line, field_name=field_name)
        gid = parse_uint(parts[1], where=where, line=line, field_name=field_name)
        mode_text = parts[2]
        if not mode_text or not mode_text.isascii() or not set(mode_text) <= set("01234567"):
            raise FormatError(
                f"expected an octal mode, got {mode_text[:20]!r}",
                where=where,
                line=line,
                field=field_name,
            )
        mode = int(mode_text, 8)
        if mode > 0o7777:
            raise FormatError(
                f"mode {mode_text} is out of range", where=where, line=line, field=field_name
            )
        xattr = parts[3] if len(parts) == 4 and parts[3] else None
        return cls(uid, gid, mode, xattr)


@dataclass
class InstalledFile:
    name: str  # basename inside the directory block
    acl: Acl | None = None  # None: root:root 0644 (not written)
    digest: str | None = None  # "Q1" + b64(sha1(content or symlink target))


@dataclass
class InstalledDir:
    path: str  # no leading/trailing "/"; "" is the image root (apko's bare "F:")
    acl: Acl | None = None  # None: root:root 0755 (not written)
    files: list[InstalledFile] = field(default_factory=list)


@dataclass
class InstalledPackage:
    info: PackageInfo  # also carries replaces (r:) and replaces_priority (q:)
    tags: list[str] = field(default_factory=list)  # g:
    repo_tag: str | None = None  # s:
    flags: str | None = None  # f:
    dirs: list[InstalledDir] = field(default_factory=list)

    @property
    def replaces(self) -> list[str]:
        return self.info.replaces

    @property
    def replaces_priority(self) -> int | None:
        return self.info.replaces_priority

    def paths(self) -> list[str]:
        """Every directory and file path this package owns, in database order."""
        result: list[str] = []
        for directory in self.dirs:
            if directory.path:
                result.append(directory.path)
            prefix = f"{directory.path}/" if directory.path else ""
            result.extend(prefix + f.name for f in directory.files)
        return result


def _decode(data: bytes | str, where: str) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise FormatError(f"not UTF-8 text (byte {error.start})", where=where) from None


def parse_installed(
    data: bytes | str, where: str = "lib/apk/db/installed"
) -> list[InstalledPackage]:
    """Parse the installed database into records, in file order."""
    text = _decode(data, where)
    packages: list[InstalledPackage] = []
    fields: dict[str, Any] = {}
    extra: list[tuple[str, str]] = []
    pkg = InstalledPackage(PackageInfo())
    directory: InstalledDir | None = None
    current: InstalledFile | None = None
    start = 1

    def finish() -> None:
        pkg.info = finish_record(fields, extra, where=where, line=start)
        packages.append(pkg)

    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line:
            if fields or extra or pkg.dirs or pkg.tags:
                finish()
                fields, extra = {}, []
                pkg = InstalledPackage(PackageInfo())
                directory = current = None
            start = lineno + 1
            continue
        letter, value = split_letter_line(line, where=where, line=lineno)
        if letter == "F":
            directory = InstalledDir(value.strip("/"))
            pkg.dirs.append(directory)
            current = None
        elif letter == "R":
            if directory is None:
                raise FormatError(
                    "'R:' file line before any 'F:' directory", where=where, line=lineno
                )
            if not value or "/" in value:
                raise FormatError(
                    f"expected a file base name, got {value[:60]!r}", where=where, line=lineno
                )
            current = InstalledFile(value)
            directory.files.append(current)
        elif letter == "Z":
            if current is None:
                raise FormatError("'Z:' digest line without an 'R:' file", where=where, line=lineno)
            current.digest = value
        elif letter == "a":
            if current is None:
                raise FormatError("'a:' ACL line without an 'R:' file", where=where, line=lineno)
            current.acl = Acl.parse(value, where=where, line=lineno, field_name="a:")
        elif letter == "M":
            if directory is None:
                raise FormatError(
                    "'M:' ACL line without an 'F:' directory", where=where, line=lineno
                )
            if not directory.path:
                # as apko ParseInstalled: "M entry cannot be associated with top level dir"
                raise FormatError(
                    "'M:' ACL cannot be associated with the top-level directory",
                    where=where,
                    line=lineno,
                )
            directory.acl = Acl.parse(value, where=where, line=lineno, field_name="M:")
        elif apply_header_line(fields, letter, value, where=where, line=lineno):
            pass
        elif letter == "r":
            fields.setdefault("replaces", []).extend(split_list_value(value))
        elif letter == "q":
            fields["replaces_priority"] = parse_uint(
                value, where=where, line=lineno, field_name="q:"
            )
        elif letter == "g":
            pkg.tags.extend(value.split())
        elif letter == "s":
            pkg.repo_tag = value
        elif letter == "f":
            pkg.flags = value
        else:
            extra.append((letter, value))
    if fields or extra or pkg.dirs or pkg.tags:
        finish()
    return packages


def format_installed_record(pkg: InstalledPackage, out: list[str]) -> None:
    info = pkg.info
    format_record_header(info, out)
    if pkg.tags:
        out.append("g:" + " ".join(pkg.tags))
    if info.replaces:
        out.append("r:" + " ".join(info.replaces))
    if info.replaces_priority is not None:
        out.append(f"q:{info.replaces_priority}")
    if pkg.repo_tag is not None:
        out.append("s:" + pkg.repo_tag)
    if pkg.flags is not None:
        out.append("f:" + pkg.flags)
    format_extra(info, out)
    for directory in pkg.dirs:
        out.append("F:" + directory.path)
        if directory.acl is not None:
            out.append("M:" + directory.acl.format())
        for entry in directory.files:
            if "\n" in entry.name or "/" in entry.name or not entry.name:
                raise FormatError(
                    f"invalid file name {entry.name[:60]!r}", where=f"{info.name}-{info.version}"
                )
            out.append("R:" + entry.name)
            if entry.acl is not None:
                out.append("a:" + entry.acl.format())
            if entry.digest is not None:
                out.append("Z:" + entry.digest)
    out.append("")


def format_installed(packages: Iterable[InstalledPackage]) -> str:
    """Render the database; each record ends with an empty line (AT layout)."""
    out: list[str] = []
    for pkg in packages:
        format_installed_record(pkg, out)
    return "\n".join(out) + "\n" if out else ""


# ---------------------------------------------------------------------------------------------
# Building file blocks from a package's data entries (for the image assembler).


@dataclass(frozen=True)
class FsEntry:
    """One entry of a package's data tar, as the installed db needs it."""

    path: str  # relative, "/"-separated, no leading "/"
    kind: Literal["dir", "file", "symlink"]
    mode: int  # permission bits
    uid: int = 0
    gid: int = 0
    digest: str | None = None  # Q1 sha1 of content (file) or of the target string (symlink)
    xattr_hash: str | None = None


def file_blocks(entries: Iterable[FsEntry]) -> list[InstalledDir]:
    """Group entries into ``F:`` blocks in first-seen order, omitting default ACLs as AT does
    (dirs root:root 0755, files root:root 0644; symlinks therefore show ``a:0:0:777``).
    Files whose directory has no entry of its own get an ACL-less block (apko: bare ``F:`` for
    the root)."""
    blocks: dict[str, InstalledDir] = {}
    for entry in entries:
        path = entry.path.strip("/")
        if entry.kind == "dir":
            acl = None
            if (entry.uid, entry.gid, entry.mode & 0o7777, entry.xattr_hash) != (
                0,
                0,
                DEFAULT_DIR_MODE,
                None,
            ):
                acl = Acl(entry.uid, entry.gid, entry.mode & 0o7777, entry.xattr_hash)
            block = blocks.get(path)
            if block is None:
                blocks[path] = InstalledDir(path, acl)
            else:
                block.acl = acl
            continue
        parent, _, name = path.rpartition("/")
        block = blocks.get(parent)
        if block is None:
            block = blocks[parent] = InstalledDir(parent)
        acl = None
        if (entry.uid, entry.gid, entry.mode & 0o7777, entry.xattr_hash) != (
            0,
            0,
            DEFAULT_FILE_MODE,
            None,
        ):
            acl = Acl(entry.uid, entry.gid, entry.mode & 0o7777, entry.xattr_hash)
        block.files.append(InstalledFile(name, acl, entry.digest))
    return list(blocks.values())


def q1_from_hex(sha1_hex: str) -> str:
    """``APK-TOOLS.checksum.SHA1`` hex -> ``Q1`` + base64, the ``Z:`` form (as apko converts)."""
    try:
        raw = bytes.fromhex(sha1_hex)
    except ValueError:
        raise FormatError(f"expected a hex SHA-1, got {sha1_hex[:60]!r}") from None
    if len(raw) != 20:
        raise FormatError(f"expected a 40-digit hex SHA-1, got {sha1_hex[:60]!r}")
    return q1_checksum(raw)


def fs_entries(entries: Iterable[TarEntry]) -> list[FsEntry]:
    """Data-tar entries as ``FsEntry``s: digests from the PAX checksum or computed (files: the
    content, symlinks: the target string; hardlinks: the content of the file they name)."""
    result: list[FsEntry] = []
    digests: dict[str, str | None] = {}
    for entry in entries:
        digest: str | None = None
        kind: Literal["dir", "file", "symlink"]
        if entry.type == "dir":
            kind = "dir"
        elif entry.type == "symlink":
            kind = "symlink"
            digest = q1_from_hex(entry.pax_checksum or entry.content_sha1() or "")
        else:
            kind = "file"
            if entry.type == "file":
                digest = q1_from_hex(entry.pax_checksum or entry.content_sha1() or "")
            elif entry.type == "hardlink":
                digest = digests.get(entry.linkname.strip("/"))
        digests[entry.path.strip("/")] = digest
        result.append(
            FsEntry(
                entry.path,
                kind,
                entry.mode & 0o7777,
                entry.uid,
                entry.gid,
                digest,
                xattr_hash(entry.xattrs),
            )
        )
    return result


def xattr_hash(xattrs: dict[str, bytes]) -> str | None:
    """AT ``apk_fileinfo_hash_xattr_array`` (src/io.c): SHA-1 over the xattrs sorted by name,
    name and value each preceded by its 32-bit big-endian length; ``Q1`` form, None if none."""
    if not xattrs:
        return None
    digest = hashlib.sha1()
    for name in sorted(xattrs):
        for part in (name.encode("utf-8", "surrogateescape"), xattrs[name]):
            digest.update(len(part).to_bytes(4, "big"))
            digest.update(part)
    return q1_checksum(digest.digest())


def installed_package(
    info: PackageInfo, entries: Iterable[TarEntry], *, repo_tag: str | None = None
) -> InstalledPackage:
    """The installed-db record apk would write for a package (``info`` from ``read_apk``, with
    ``checksum`` and ``file_size`` set) whose data tar holds ``entries``."""
    record = index_record(info)
    record.replaces = list(info.replaces)
    record.replaces_priority = info.replaces_priority
    return InstalledPackage(record, repo_tag=repo_tag, dirs=file_blocks(fs_entries(entries)))


# ---------------------------------------------------------------------------------------------
# scripts.tar member names and triggers lines


def script_member_name(name: str, version: str, identity: str, script: str) -> str:
    """``<name>-<version>.<identity>.<script>``, e.g.
    ``busybox-1.35.0-r17.Q1Meo+LHGPSi3uY9gIouEVb9z8Fbo=.post-install`` (AT 2.x and apko form).

    ``script`` may be given with the control member's leading dot (``.post-install``).
    """
    script = script.removeprefix(".")
    if script not in SCRIPT_NAMES:
        raise FormatError(f"unknown script {script!r}; expected one of {', '.join(SCRIPT_NAMES)}")
    if not identity.startswith(("Q1", "X1")):
        raise FormatError(f"expected a Q1/X1 package identity, got {identity[:40]!r}")
    return f"{name}-{version}.{identity}.{script}"


def parse_script_member_name(member: str) -> tuple[str, str, str]:
    """Split at the last two dots, as AT ``apk_read_script_archive_entry``:
    returns (``<name>-<version>``, identity, script)."""
    head, dot1, script = member.rpartition(".")
    namever, dot2, identity = head.rpartition(".")
    if not dot1 or not dot2 or script not in SCRIPT_NAMES or not identity.startswith(("Q", "X")):
        raise FormatError(
            f"expected '<name>-<version>.<Q1 identity>.<script>', got {member[:80]!r}",
            where="scripts.tar",
        )
    return namever, identity, script


def format_triggers_line(identity: str, globs: Iterable[str]) -> str:
    """One ``triggers`` line: ``<Q1 identity> <glob> <glob>...\\n`` (AT apk_db_triggers_write)."""
    globs = list(globs)
    for glob in globs:
        if not glob or any(c in glob for c in " \n"):
            raise FormatError(f"invalid trigger path {glob!r}", where="triggers")
    return " ".join([identity, *globs]) + "\n"


def parse_triggers(
    data: bytes | str, where: str = "lib/apk/db/triggers"
) -> list[tuple[str, list[str]]]:
    """Parse ``triggers``: one ``(identity, globs)`` per non-empty line."""
    result: list[tuple[str, list[str]]] = []
    for lineno, line in enumerate(_decode(data, where).split("\n"), start=1):
        words = line.split()
        if not words:
            continue
        if not words[0].startswith(("Q1", "X1")):
            raise FormatError(
                f"expected a package identity first, got {words[0][:40]!r}",
                where=where,
                line=lineno,
            )
        result.append((words[0], words[1:]))
    return result


# Short names other modules may prefer.
parse_installed_db = parse_installed
format_installed_db = format_installed
