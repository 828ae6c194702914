"""Deterministic tar writer, strict tar reader, safe extraction and multi-member gzip helpers.

Shared by the APK codec (``formats/apk.py``), the APKINDEX codec and the image assembler.

Writing (reference/formats.md §1.3, §9): ustar headers as Go's ``archive/tar`` writes them
(``ustar\\0`` ``00`` magic, 6-digit octal checksum), PAX ``x`` headers only when needed — long or
non-ASCII names, ``APK-TOOLS.checksum.SHA1`` per regular file/symlink, ``SCHILY.xattr.*`` — with
records sorted by key and the PAX header named ``<dir>/PaxHeaders.0/<base>`` like Go. Directory
names carry no trailing slash (melange). Integer mtimes only, so no ``mtime`` PAX record appears.

Reading mirrors apk-tools ``src/tar.c`` ``apk_tar_parse``: ``ustar`` magic required (POSIX or GNU
flavour), PAX ``path``/``linkpath``/``size``/``SCHILY.xattr.*``/``APK-TOOLS.checksum.SHA1``
applied to the next entry, GNU ``L``/``K`` long names, a zero block ends the archive and a missing
end-of-archive is fine (signature and control segments have none). Every malformed input raises
``FormatError`` naming ``where``.

Extraction (``extract``) validates every entry first and writes nothing when one is unsafe; it
resolves paths like a chroot would, so symlinks inside the destination (``lib -> usr/lib``) are
followed but can never lead outside it.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import os
import stat
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from nanodistro.errors import FormatError, UnsafePathError
from nanodistro.formats.inflate import (
    HOLD_FLOOR,
    HOLD_RATIO,
    IN_MEMORY_LIMIT,
    current_budget,
    exceeded,
)

EntryType = Literal["file", "dir", "symlink", "hardlink", "chr", "blk", "fifo"]

BLOCK = 512
END_OF_ARCHIVE = b"\0" * (2 * BLOCK)
PAX_CHECKSUM_KEY = "APK-TOOLS.checksum.SHA1"
XATTR_PREFIX = "SCHILY.xattr."
#: Default ceiling for inflating one gzip stream; packages are read into memory.
DEFAULT_MAX_INFLATED = IN_MEMORY_LIMIT
_IN_CHUNK = 256 * 1024
_OUT_CHUNK = 4 * 1024 * 1024

_TYPEFLAGS: dict[EntryType, bytes] = {
    "file": b"0",
    "hardlink": b"1",
    "symlink": b"2",
    "chr": b"3",
    "blk": b"4",
    "dir": b"5",
    "fifo": b"6",
}
_READ_TYPES: dict[bytes, EntryType] = {
    b"0": "file",
    b"\0": "file",
    b"7": "file",  # contiguous file, a regular file for every reader
    b"1": "hardlink",
    b"2": "symlink",
    b"3": "chr",
    b"4": "blk",
    b"5": "dir",
    b"6": "fifo",
}


@dataclass
class TarEntry:
    """One archive member. ``path`` is relative, without ``./`` prefix or trailing slash."""

    path: str
    type: EntryType = "file"
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    uname: str = "root"
    gname: str = "root"
    mtime: int = 0
    data: bytes = b""
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)
    #: ``APK-TOOLS.checksum.SHA1`` (lowercase hex) as read from the archive; the writer
    #: computes its own, so this is ``None`` for entries built in memory.
    pax_checksum: str | None = None

    @property
    def size(self) -> int:
        return len(self.data) if self.type == "file" else 0

    def content_sha1(self) -> str | None:
        """The SHA-1 apk-tools records: of the content for files, of the target for symlinks."""
        if self.type == "file":
            return hashlib.sha1(self.data).hexdigest()
        if self.type == "symlink":
            return hashlib.sha1(self.linkname.encode("utf-8", "surrogateescape")).hexdigest()
        return None


def sort_key(path: str | TarEntry) -> tuple[bytes, ...]:
    """Order of Go ``fs.WalkDir`` (melange, apko): depth first, siblings by name bytes.

    ``a/x`` sorts before ``a-b`` (unlike a plain string sort of full paths, which abuild uses).
    """
    text = path.path if isinstance(path, TarEntry) else path
    return tuple(part.encode("utf-8", "surrogateescape") for part in text.split("/") if part)


# --------------------------------------------------------------------------------------------
# gzip


@dataclass(frozen=True)
class GzipMember:
    """One gzip member of a multi-member stream: its compressed bytes, position and content."""

    raw: bytes
    offset: int
    inflated: bytes

    @property
    def end(self) -> int:
        """Inclusive index of the member's last byte in the whole file (for ``bytes=a-b``)."""
        return self.offset + len(self.raw) - 1


def gzip_member(data: bytes, *, level: int = 9) -> bytes:
    """Deterministic gzip member: MTIME 0, no FNAME (reference/formats.md §9)."""
    return gzip.compress(data, compresslevel=level, mtime=0)


def gzip_members(
    data: bytes,
    *,
    where: str,
    max_inflated: int = DEFAULT_MAX_INFLATED,
    max_members: int | None = None,
) -> list[GzipMember]:
    """Split a multi-member gzip stream into members, inflating each.

    ``max_members`` stops after that many members (e.g. 1 to read only a signature member).

    ``max_inflated`` bounds the total inflated size of this read, and every inflated byte is
    charged to the command's decompression budget (``formats/inflate.py``: decompression bombs).
    Memory stays near ``max(HOLD_FLOOR, HOLD_RATIO x len(data))`` until the total is known to
    fit. Trailing NUL padding after the last member is tolerated; any other trailing bytes, a
    truncated or corrupt member raise ``FormatError``.
    """
    members: list[GzipMember] = []
    view = memoryview(data)
    offset = 0
    read = _BoundedRead(where, max_inflated, max(HOLD_FLOOR, HOLD_RATIO * len(data)))
    while offset < len(data):
        if max_members is not None and len(members) >= max_members:
            break
        if not any(view[offset:]) and members:
            break  # tape-style zero padding after the last member
        if bytes(view[offset : offset + 2]) != b"\x1f\x8b":
            raise FormatError(
                f"expected a gzip member at byte {offset}, found {bytes(view[offset : offset + 4])!r}",
                where=where,
            )
        read.start_member()
        length = _inflate_member(view, offset, where, read.take)
        if not read.holding:
            # Fits the limit after all (a highly compressible but real file): inflate again,
            # this time keeping the output. Charged once, by ``take``.
            _inflate_member(view, offset, where, read.parts.append)
        members.append(
            GzipMember(bytes(view[offset : offset + length]), offset, b"".join(read.parts))
        )
        offset += length
    if not members:
        raise FormatError("empty file, expected gzip data", where=where)
    return members


class _BoundedRead:
    """The accounting of one in-memory read: its limit, what it holds, the command's budget."""

    def __init__(self, where: str, limit: int, hold_limit: int) -> None:
        self.where = where
        self.limit = limit
        self.hold_limit = hold_limit
        self.budget = current_budget()
        self.total = 0
        self.parts: list[bytes] = []
        self.holding = True

    def start_member(self) -> None:
        self.parts = []
        self.holding = self.total <= self.hold_limit

    def take(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if self.total > self.limit:
            raise exceeded(self.limit, "one in-memory read", where=self.where)
        self.budget.charge(len(chunk), where=self.where)
        if self.holding and self.total > self.hold_limit:
            self.holding = False  # a suspicious ratio: only count until the total is known
            self.parts = []
        if self.holding:
            self.parts.append(chunk)


def _inflate_member(
    view: memoryview, offset: int, where: str, sink: Callable[[bytes], None]
) -> int:
    """Inflate the gzip member at ``offset`` chunk by chunk into ``sink``; its length in bytes."""
    decomp = zlib.decompressobj(31)
    pos = offset
    try:
        # Feed bounded input chunks: passing the whole rest of the file would make zlib copy
        # it into ``unconsumed_tail`` on every bounded call (quadratic on big packages).
        while not decomp.eof:
            pending: bytes | memoryview = view[pos : pos + _IN_CHUNK]
            pos += len(pending)
            produced = False
            while True:
                chunk = decomp.decompress(pending, _OUT_CHUNK)
                if chunk:
                    produced = True
                    sink(chunk)
                pending = decomp.unconsumed_tail
                if decomp.eof or (not pending and len(chunk) < _OUT_CHUNK):
                    break
            if not decomp.eof and pos >= len(view) and not produced:
                raise FormatError(f"gzip member at byte {offset} is truncated", where=where)
    except zlib.error as error:
        raise FormatError(
            f"gzip member at byte {offset} is corrupt ({error})", where=where
        ) from None
    return pos - offset - len(decomp.unused_data)


def split_gzip_members(
    data: bytes, where: str, *, max_inflated: int = DEFAULT_MAX_INFLATED
) -> list[bytes]:
    """The compressed bytes of each gzip member (what APK signatures and hashes cover)."""
    return [m.raw for m in gzip_members(data, where=where, max_inflated=max_inflated)]


def gunzip(data: bytes, *, where: str, max_inflated: int = DEFAULT_MAX_INFLATED) -> bytes:
    """Inflate all members of a gzip stream and concatenate them."""
    return b"".join(m.inflated for m in gzip_members(data, where=where, max_inflated=max_inflated))


# --------------------------------------------------------------------------------------------
# writing


def _pax_record(key: str, value: bytes) -> bytes:
    body = b" " + key.encode() + b"=" + value + b"\n"
    length = len(body) + len(str(len(body)))
    if len(str(length)) > len(str(len(body))):
        length += 1
    return str(length).encode() + body


def _octal(value: int, width: int) -> bytes | None:
    """``width``-byte NUL-terminated octal field, or None when the value does not fit."""
    if 0 <= value < 8 ** (width - 1):
        return b"%0*o\0" % (width - 1, value)
    return None


def _num(value: int, width: int) -> bytes:
    """Octal header field; zeros when the value does not fit (a PAX record carries it)."""
    if 0 <= value < 8 ** (width - 1):
        return b"%0*o\0" % (width - 1, value)
    return b"0" * (width - 1) + b"\0"


_NO_DEVICE = b"\0" * 16  # Go leaves the device fields of PAX headers empty
_ZEROS = b"\0" * BLOCK


def _raw_header(
    *,
    name: bytes,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    mtime: int,
    typeflag: bytes,
    linkname: bytes = b"",
    uname: bytes = b"",
    gname: bytes = b"",
    devmajor: int = 0,
    devminor: int = 0,
    prefix: bytes = b"",
) -> bytes:
    # One join of the fixed-width fields (a layer has thousands of headers).
    header = b"".join(
        (
            name[:100].ljust(100, b"\0"),
            _num(mode, 8),
            _num(uid, 8),
            _num(gid, 8),
            _num(size, 12),
            _num(mtime, 12),
            b"        ",  # checksum field counts as spaces
            typeflag,
            linkname[:100].ljust(100, b"\0"),
            b"ustar\x0000",
            uname[:32].ljust(32, b"\0"),
            gname[:32].ljust(32, b"\0"),
            _NO_DEVICE if typeflag == b"x" else _num(devmajor, 8) + _num(devminor, 8),
            prefix[:155].ljust(155, b"\0"),
            _ZEROS[:12],
        )
    )
    return header[:148] + b"%06o\0 " % sum(header) + header[156:]


def _padding(size: int) -> bytes:
    return _ZEROS[: -size % BLOCK]


def _split_name(name: bytes) -> tuple[bytes, bytes] | None:
    """(prefix, name) for a ustar header, or None when PAX ``path`` is needed."""
    if len(name) <= 100:
        return b"", name
    for index in range(len(name) - 1, 0, -1):
        if name[index : index + 1] == b"/" and index <= 155 and len(name) - index - 1 <= 100:
            return name[:index], name[index + 1 :]
    return None


def entry_bytes(entry: TarEntry, *, apk_checksums: bool) -> bytes:
    """Header(s) plus padded content of one entry."""
    return b"".join(_entry_parts(entry, apk_checksums=apk_checksums))


def _entry_parts(entry: TarEntry, *, apk_checksums: bool) -> list[bytes]:
    """Header(s), content and padding of one entry, unjoined (content is not copied)."""
    encode = lambda text: text.encode("utf-8", "surrogateescape")  # noqa: E731
    name = encode(entry.path)
    link = encode(entry.linkname)
    records: dict[str, bytes] = {}
    split = _split_name(name) if name.isascii() else None
    if split is None:
        records["path"] = name
        split = b"", name[:100]
    if len(link) > 100 or not link.isascii():
        records["linkpath"] = link
    size = entry.size
    for key, value, width in (("size", size, 12), ("uid", entry.uid, 8), ("gid", entry.gid, 8)):
        if _octal(value, width) is None:
            records[key] = str(value).encode()
    if _octal(entry.mtime, 12) is None:
        records["mtime"] = str(entry.mtime).encode()
    uname, gname = encode(entry.uname), encode(entry.gname)
    if len(uname) > 32 or not uname.isascii():
        records["uname"] = uname
    if len(gname) > 32 or not gname.isascii():
        records["gname"] = gname
    if apk_checksums:
        checksum = entry.content_sha1()
        if checksum is not None:
            records[PAX_CHECKSUM_KEY] = checksum.encode()
    for xattr_name, xattr_value in entry.xattrs.items():
        records[XATTR_PREFIX + xattr_name] = xattr_value
    out: list[bytes] = []
    if records:
        payload = b"".join(_pax_record(key, records[key]) for key in sorted(records))
        directory, _, base = name.rpartition(b"/")
        pax_name = (directory + b"/" if directory else b"") + b"PaxHeaders.0/" + base
        out.append(
            _raw_header(
                name=pax_name[:100],
                mode=0,
                uid=0,
                gid=0,
                size=len(payload),
                mtime=0,
                typeflag=b"x",
            )
        )
        out += (payload, _padding(len(payload)))
    prefix, short = split
    out.append(
        _raw_header(
            name=short,
            prefix=prefix,
            mode=entry.mode & 0o7777,
            uid=entry.uid,
            gid=entry.gid,
            size=size,
            mtime=entry.mtime,
            typeflag=_TYPEFLAGS[entry.type],
            linkname=link[:100],
            uname=uname[:32],
            gname=gname[:32],
            devmajor=entry.devmajor,
            devminor=entry.devminor,
        )
    )
    if size:
        out += (entry.data, _padding(size))
    return out


def write_tar(
    entries: Iterable[TarEntry], *, end_of_archive: bool = True, apk_checksums: bool = False
) -> bytes:
    """Serialize ``entries`` in the given order (sort with ``sort_key`` first if wanted).

    ``end_of_archive=False`` leaves out the two zero blocks (APK signature/control segments).
    ``apk_checksums=True`` adds ``APK-TOOLS.checksum.SHA1`` to regular files and symlinks.
    """
    parts: list[bytes] = []
    for entry in entries:
        parts += _entry_parts(entry, apk_checksums=apk_checksums)
    if end_of_archive:
        parts.append(END_OF_ARCHIVE)
    return b"".join(parts)


def entries_from_directory(
    root: Path,
    *,
    mtime: int,
    beneath: Path | None = None,
    uid: int = 0,
    gid: int = 0,
    uname: str = "root",
    gname: str = "root",
    keep_owners: bool = False,
    id_map: Mapping[int, int] | None = None,
    user_names: Mapping[int, str] | None = None,
    group_names: Mapping[int, str] | None = None,
    with_xattrs: bool = True,
) -> list[TarEntry]:
    """Walk ``root`` in Go ``fs.WalkDir`` order and return its entries (root itself excluded).

    Nothing in the tree is followed: each directory is opened through its parent's descriptor
    with ``O_NOFOLLOW | O_DIRECTORY``, each file with ``O_NOFOLLOW``, and type, mode and inode
    come from ``fstat`` of the opened descriptor, so a symlink (even one swapped in while the
    walk runs) becomes a symlink entry holding its target text and is never read through. The
    tree may be written by untrusted code (a build's output). ``root`` itself must be a real
    directory; with ``beneath`` (a directory the caller created and trusts) ``root`` must lie
    under it and every component from ``beneath`` down is opened the same way, so a link
    anywhere on that path is refused instead of followed.

    Owners are fixed to ``uid:gid`` (``uname``/``gname``) unless ``keep_owners``; mtimes are all
    ``mtime`` (SOURCE_DATE_EPOCH). With ``keep_owners`` the on-disk ids are kept after
    ``id_map`` (melange maps the build user 1000 to 0) and named through ``user_names``/
    ``group_names`` (the build guest's passwd/group; 0 is ``root``, unknown ids get no name).
    Files sharing an inode become hardlinks to the first path, as melange does
    (``pkg/tarball/write.go``). A file whose other links lie outside the tree cannot be told
    apart by its inode and is read as a plain file through its descriptor beneath ``root``:
    whoever linked it could read it, so nothing is disclosed that the tree's writer could not
    copy in anyway. Sockets, unreadable entries and links on the path to ``root`` raise
    ``FormatError`` naming the path.
    """
    ids = dict(id_map or {})
    users = {0: "root", **(user_names or {})}
    groups = {0: "root", **(group_names or {})}
    root = Path(root)
    entries: list[TarEntry] = []
    inodes: dict[tuple[int, int], str] = {}

    def owner_of(st: os.stat_result) -> dict[str, object]:
        if not keep_owners:
            return {"uid": uid, "gid": gid, "uname": uname, "gname": gname}
        file_uid, file_gid = ids.get(st.st_uid, st.st_uid), ids.get(st.st_gid, st.st_gid)
        return {
            "uid": file_uid,
            "gid": file_gid,
            "uname": users.get(file_uid, ""),
            "gname": groups.get(file_gid, ""),
        }

    def walk(dir_fd: int, relative: str, depth: int) -> None:
        where = root / relative if relative else root
        if depth > _MAX_WALK_DEPTH:
            raise FormatError(
                f"directories nested deeper than {_MAX_WALK_DEPTH} levels", where=str(where)
            )
        try:
            names = sorted(os.listdir(dir_fd), key=os.fsencode)
        except OSError as error:
            raise FormatError(
                f"cannot list directory ({error.strerror})", where=str(where)
            ) from None
        for name in names:
            rel = f"{relative}/{name}" if relative else name
            path = root / rel
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except OSError as error:
                raise FormatError(f"cannot stat ({error.strerror})", where=str(path)) from None
            if stat.S_ISDIR(st.st_mode):
                fd = _open_nofollow(name, dir_fd, _DIR_FLAGS, path)
                try:
                    st = os.fstat(fd)
                    common = {"mode": stat.S_IMODE(st.st_mode), "mtime": mtime, **owner_of(st)}
                    xattrs = _read_xattrs(fd) if with_xattrs else {}
                    entries.append(TarEntry(rel, "dir", xattrs=xattrs, **common))  # type: ignore[arg-type]
                    walk(fd, rel, depth + 1)
                finally:
                    os.close(fd)
            elif stat.S_ISREG(st.st_mode):
                # O_NONBLOCK: a fifo swapped in after the stat must not block the open
                fd = _open_nofollow(name, dir_fd, _FILE_FLAGS, path)
                try:
                    st = os.fstat(fd)
                    if not stat.S_ISREG(st.st_mode):
                        raise FormatError("changed type while being read", where=str(path))
                    common = {"mode": stat.S_IMODE(st.st_mode), "mtime": mtime, **owner_of(st)}
                    key = (st.st_dev, st.st_ino)
                    if st.st_nlink > 1 and key in inodes:
                        entries.append(TarEntry(rel, "hardlink", linkname=inodes[key], **common))  # type: ignore[arg-type]
                        continue
                    inodes[key] = rel
                    xattrs = _read_xattrs(fd) if with_xattrs else {}
                    data = _read_fd(fd, path)
                finally:
                    os.close(fd)
                entries.append(TarEntry(rel, "file", data=data, xattrs=xattrs, **common))  # type: ignore[arg-type]
            elif stat.S_ISLNK(st.st_mode):
                common = {"mode": stat.S_IMODE(st.st_mode), "mtime": mtime, **owner_of(st)}
                try:
                    target = os.readlink(name, dir_fd=dir_fd)
                except OSError as error:
                    raise FormatError(
                        f"cannot read link ({error.strerror})", where=str(path)
                    ) from None
                entries.append(TarEntry(rel, "symlink", linkname=target, **common))  # type: ignore[arg-type]
            elif stat.S_ISFIFO(st.st_mode):
                common = {"mode": stat.S_IMODE(st.st_mode), "mtime": mtime, **owner_of(st)}
                entries.append(TarEntry(rel, "fifo", **common))  # type: ignore[arg-type]
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                common = {"mode": stat.S_IMODE(st.st_mode), "mtime": mtime, **owner_of(st)}
                kind: EntryType = "chr" if stat.S_ISCHR(st.st_mode) else "blk"
                entries.append(
                    TarEntry(
                        rel,
                        kind,
                        devmajor=os.major(st.st_rdev),
                        devminor=os.minor(st.st_rdev),
                        **common,  # type: ignore[arg-type]
                    )
                )
            else:
                raise FormatError(
                    "sockets and other special files cannot be archived", where=str(path)
                )

    root_fd = _open_root(root, beneath)
    try:
        walk(root_fd, "", 0)
    finally:
        os.close(root_fd)
    return entries


_MAX_WALK_DEPTH = 512
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def _open_nofollow(name: str, dir_fd: int | None, flags: int, path: Path) -> int:
    """``openat(dir_fd, name, flags)`` with ``O_NOFOLLOW``; a link or wrong type is named."""
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except OSError as error:
        try:
            is_link = stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
        except OSError:
            is_link = False
        if is_link:
            raise FormatError(
                f"is a symbolic link to {os.readlink(name, dir_fd=dir_fd)!r}; expected a "
                f"{'directory' if flags & os.O_DIRECTORY else 'file'} (links are not followed)",
                where=str(path),
            ) from None
        raise FormatError(f"cannot open ({error.strerror})", where=str(path)) from None


def _open_root(root: Path, beneath: Path | None) -> int:
    """A descriptor for ``root``, opened without following a link on the way (see above)."""
    if beneath is None:
        return _open_nofollow(str(root), None, _DIR_FLAGS, root)
    beneath = Path(beneath)
    try:
        parts = root.relative_to(beneath).parts
    except ValueError:
        raise FormatError(f"is not beneath {beneath}", where=str(root)) from None
    if any(part in (".", "..") for part in parts):
        raise FormatError(f"is not beneath {beneath}", where=str(root))
    fd = _open_nofollow(str(beneath), None, _DIR_FLAGS & ~os.O_NOFOLLOW, beneath)
    current = beneath
    try:
        for part in parts:
            current = current / part
            next_fd = _open_nofollow(part, fd, _DIR_FLAGS, current)
            os.close(fd)
            fd = next_fd
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_fd(fd: int, path: Path) -> bytes:
    chunks: list[bytes] = []
    try:
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
    except OSError as error:
        raise FormatError(f"cannot read ({error.strerror})", where=str(path)) from None
    return b"".join(chunks)


def _read_xattrs(fd: int) -> dict[str, bytes]:
    try:
        names = os.listxattr(fd)
    except OSError:
        return {}
    # SELinux labels describe the build host, not the package.
    return {
        name: os.getxattr(fd, name)
        for name in sorted(names)
        if not name.startswith("security.selinux")
    }


# --------------------------------------------------------------------------------------------
# reading


def _parse_number(field_bytes: bytes, *, where: str, what: str) -> int:
    if field_bytes and field_bytes[0] & 0x80:  # GNU base-256
        value = int.from_bytes(field_bytes[1:], "big")
        return -value if field_bytes[0] & 0x40 else value
    text = field_bytes.replace(b"\0", b" ").strip()
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise FormatError(f"bad octal {what} field {text[:12]!r}", where=where) from None


def _parse_pax(payload: bytes, *, where: str) -> dict[str, bytes]:
    records: dict[str, bytes] = {}
    pos = 0
    while pos < len(payload):
        if not payload[pos:].strip(b"\0"):
            break
        space = payload.find(b" ", pos)
        try:
            length = int(payload[pos:space]) if space > pos else -1
        except ValueError:
            length = -1
        if length <= 0 or pos + length > len(payload) or payload[pos + length - 1] != 0x0A:
            raise FormatError(f"malformed PAX record at offset {pos}", where=where)
        key, sep, value = payload[space + 1 : pos + length - 1].partition(b"=")
        if not sep:
            raise FormatError(f"malformed PAX record at offset {pos}", where=where)
        records[key.decode("utf-8", "surrogateescape")] = value
        pos += length
    return records


def _pax_int(pax: dict[str, bytes], key: str, where: str) -> int:
    """Integer PAX value; fractional times (``1700000000.5``) are truncated to seconds."""
    try:
        return int(pax[key].split(b".", 1)[0])
    except ValueError:
        raise FormatError(f"bad PAX {key} value {pax[key][:20]!r}", where=where) from None


def _cstring(raw: bytes) -> bytes:
    return raw.split(b"\0", 1)[0]


def _normalize(path: str) -> str:
    while path.startswith("./"):
        path = path[2:]
    return path.rstrip("/") or "."


def read_tar(data: bytes, *, where: str) -> list[TarEntry]:
    """Parse a tar stream (with or without end-of-archive) into entries with their content.

    A header that claims more content than the stream holds (e.g. a 10 GB size in a tiny file)
    is reported, not trusted. Global PAX headers are ignored, as apk-tools does.
    """
    entries: list[TarEntry] = []
    pos = 0
    pax: dict[str, bytes] = {}
    long_name: bytes | None = None
    long_link: bytes | None = None
    decode = lambda raw: raw.decode("utf-8", "surrogateescape")  # noqa: E731
    while pos + BLOCK <= len(data):
        header = data[pos : pos + BLOCK]
        if header[0] == 0:
            break  # end of archive (apk-tools also stops at the first zero name)
        if header[257:262] != b"ustar":
            raise FormatError(f"not a ustar header at byte {pos} (bad magic)", where=where)
        stored = _parse_number(header[148:156], where=where, what="checksum")
        computed = sum(header[:148]) + 8 * 32 + sum(header[156:])
        if stored != computed:
            raise FormatError(f"tar header checksum mismatch at byte {pos}", where=where)
        typeflag = header[156:157]
        name = _cstring(header[0:100])
        if header[257:263] == b"ustar\0" and header[345] != 0:
            name = _cstring(header[345:500]) + b"/" + name
        size = _parse_number(header[124:136], where=where, what="size")
        if "size" in pax and typeflag not in (b"x", b"g"):
            try:
                size = int(pax["size"])
            except ValueError:
                raise FormatError(f"bad PAX size for {decode(name)!r}", where=where) from None
        if size < 0:
            raise FormatError(f"negative size in tar header at byte {pos}", where=where)
        start = pos + BLOCK
        available = len(data) - start
        has_content = typeflag not in (b"1", b"2", b"3", b"4", b"5", b"6")
        if has_content and size > available:
            raise FormatError(
                f"entry {decode(name)!r} claims {size} bytes but only {available} remain "
                "(truncated or corrupt archive)",
                where=where,
            )
        content = data[start : start + size] if has_content else b""
        pos = start + (size + (-size % BLOCK) if has_content else 0)
        if typeflag == b"x":
            pax = _parse_pax(content, where=where)
            continue
        if typeflag == b"g":
            continue
        if typeflag == b"L":
            long_name = _cstring(content)
            continue
        if typeflag == b"K":
            long_link = _cstring(content)
            continue
        kind = _READ_TYPES.get(typeflag)
        if kind is None:
            raise FormatError(
                f"unsupported tar entry type {typeflag!r} for {decode(name)!r}", where=where
            )
        if long_name is not None:
            name = long_name
        if "path" in pax:
            name = pax["path"]
        link = _cstring(header[157:257]) if kind in ("symlink", "hardlink") else b""
        if long_link is not None:
            link = long_link
        if "linkpath" in pax:
            link = pax["linkpath"]
        checksum = pax.get(PAX_CHECKSUM_KEY)
        uid = _pax_int(pax, "uid", where) if "uid" in pax else None
        gid = _pax_int(pax, "gid", where) if "gid" in pax else None
        mtime = _pax_int(pax, "mtime", where) if "mtime" in pax else None
        entry = TarEntry(
            path=_normalize(decode(name)),
            type=kind,
            mode=_parse_number(header[100:108], where=where, what="mode") & 0o7777,
            uid=uid if uid is not None else _parse_number(header[108:116], where=where, what="uid"),
            gid=gid if gid is not None else _parse_number(header[116:124], where=where, what="gid"),
            uname=decode(pax.get("uname", _cstring(header[265:297]))),
            gname=decode(pax.get("gname", _cstring(header[297:329]))),
            mtime=mtime
            if mtime is not None
            else _parse_number(header[136:148], where=where, what="mtime"),
            data=content if kind == "file" else b"",
            linkname=_normalize(decode(link)) if kind == "hardlink" else decode(link),
            devmajor=_parse_number(header[329:337], where=where, what="devmajor"),
            devminor=_parse_number(header[337:345], where=where, what="devminor"),
            xattrs={
                key[len(XATTR_PREFIX) :]: value
                for key, value in pax.items()
                if key.startswith(XATTR_PREFIX)
            },
            pax_checksum=checksum.decode("ascii", "replace").lower() if checksum else None,
        )
        entries.append(entry)
        pax, long_name, long_link = {}, None, None
    else:
        if pos != len(data) and any(data[pos:]):
            raise FormatError(f"truncated tar header at byte {pos}", where=where)
    return entries


# --------------------------------------------------------------------------------------------
# safety and extraction


def _components(path: str, *, where: str, what: str) -> list[str]:
    if not path or "\0" in path:
        raise UnsafePathError(f"{what} {path!r} is empty or contains NUL", where=where)
    if path.startswith("/"):
        raise UnsafePathError(f"{what} {path!r} is absolute", where=where)
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafePathError(f"{what} {path!r} contains '..'", where=where)
    return parts


def _symlink_escapes(path: str, target: str) -> bool:
    """Whether ``target`` of a symlink at ``path`` resolves above the root (chroot semantics)."""
    stack = [] if target.startswith("/") else path.split("/")[:-1]
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not stack:
                return True
            stack.pop()
        else:
            stack.append(part)
    return False


def check_safe(
    entry: TarEntry, where: str, *, allow_devices: bool = False, max_size: int | None = None
) -> None:
    """Raise ``UnsafePathError`` if ``entry`` could write outside its root or is not allowed.

    Rejected: absolute paths, ``..`` components, NUL bytes, symlinks whose target (relative to
    the link, or absolute meaning the root) climbs above the root, hardlinks to unsafe paths,
    device nodes unless ``allow_devices``, files larger than ``max_size``.
    """
    if entry.path == ".":
        return
    _components(entry.path, where=where, what="path")
    if entry.type == "symlink":
        if not entry.linkname or "\0" in entry.linkname:
            raise UnsafePathError(f"symlink {entry.path!r} has an empty target", where=where)
        if _symlink_escapes(entry.path, entry.linkname):
            raise UnsafePathError(
                f"symlink {entry.path!r} -> {entry.linkname!r} points outside the root",
                where=where,
            )
    elif entry.type == "hardlink":
        _components(entry.linkname, where=where, what=f"hardlink target of {entry.path!r}")
    elif entry.type in ("chr", "blk") and not allow_devices:
        raise UnsafePathError(
            f"device node {entry.path!r} ({entry.type} {entry.devmajor}:{entry.devminor}) "
            "is not allowed",
            where=where,
        )
    if max_size is not None and entry.size > max_size:
        raise UnsafePathError(
            f"file {entry.path!r} is {entry.size} bytes, more than the {max_size} allowed",
            where=where,
        )


def validate_entries(
    entries: Sequence[TarEntry],
    where: str,
    *,
    allow_devices: bool = False,
    max_size: int | None = None,
) -> None:
    """``check_safe`` on every entry, plus: hardlinks must name an earlier regular file."""
    files: set[str] = set()
    for entry in entries:
        check_safe(entry, where, allow_devices=allow_devices, max_size=max_size)
        if entry.type == "file":
            files.add(entry.path)
        elif entry.type == "hardlink" and entry.linkname.strip("/") not in files:
            raise UnsafePathError(
                f"hardlink {entry.path!r} -> {entry.linkname!r} does not name an earlier file "
                "in the archive",
                where=where,
            )


class _RootResolver:
    """Resolve archive paths inside ``dest`` like a chroot: symlinks (already on disk or created
    by earlier entries) are followed, but never above ``dest``."""

    _MAX_LINKS = 40

    def __init__(self, dest: Path, where: str) -> None:
        self.dest = dest
        self.where = where
        # canonical relative path -> symlink target, or None for "exists, not a symlink"
        self.planned: dict[str, str | None] = {}
        self.planned_dirs: set[str] = set()

    def _symlink_target(self, rel: str) -> str | None:
        if rel in self.planned:
            return self.planned[rel]
        try:
            st = os.lstat(self.dest / rel)
        except FileNotFoundError:
            return None
        except OSError as error:
            raise UnsafePathError(
                f"cannot inspect {rel!r} ({error.strerror})", where=self.where
            ) from None
        if stat.S_ISLNK(st.st_mode):
            return os.readlink(self.dest / rel)
        return None

    def _is_dir(self, rel: str) -> bool:
        if rel in self.planned_dirs:
            return True
        if rel in self.planned:
            return False
        return (self.dest / rel).is_dir() and not (self.dest / rel).is_symlink()

    def resolve(self, path: str, *, follow_last: bool) -> str:
        stack: list[str] = []
        todo = [p for p in path.split("/") if p]
        links = 0
        while todo:
            part = todo.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                if not stack:
                    raise UnsafePathError(f"{path!r} resolves outside the root", where=self.where)
                stack.pop()
                continue
            stack.append(part)
            if not todo and not follow_last:
                break
            target = self._symlink_target("/".join(stack))
            if target is not None:
                links += 1
                if links > self._MAX_LINKS:
                    raise UnsafePathError(
                        f"{path!r}: too many levels of symlinks", where=self.where
                    )
                stack.pop()
                if target.startswith("/"):
                    stack = []
                todo = [p for p in target.split("/") if p] + todo
            elif todo:
                rel = "/".join(stack)
                if not self._is_dir(rel) and (rel in self.planned or (self.dest / rel).exists()):
                    raise UnsafePathError(
                        f"{path!r}: {rel!r} exists and is not a directory", where=self.where
                    )
        return "/".join(stack)


def extract(
    entries: Sequence[TarEntry],
    dest: Path,
    *,
    where: str = "archive",
    allow_devices: bool = False,
    preserve_owner: bool = False,
    max_size: int | None = None,
) -> None:
    """Write ``entries`` under ``dest``; never outside it.

    Everything is validated and every destination resolved before the first write, so an unsafe
    archive leaves ``dest`` untouched. Symlinks met on the way are followed inside ``dest`` only.
    Owners are applied only with ``preserve_owner`` (needs root); mtimes are always applied.
    """
    dest = Path(dest)
    validate_entries(entries, where, allow_devices=allow_devices, max_size=max_size)
    resolver = _RootResolver(dest, where)
    plan: list[tuple[TarEntry, str, str]] = []  # entry, resolved path, resolved hardlink target
    for entry in entries:
        if entry.path == ".":
            continue
        resolved = resolver.resolve(entry.path, follow_last=entry.type == "dir")
        if not resolved:
            continue
        link_target = ""
        if entry.type == "hardlink":
            link_target = resolver.resolve(entry.linkname, follow_last=False)
        if entry.type != "dir" and resolver._is_dir(resolved):
            raise FormatError(
                f"{entry.path!r} would replace a directory with a {entry.type}", where=where
            )
        if entry.type == "dir":
            resolver.planned_dirs.add(resolved)
            resolver.planned[resolved] = None
        else:
            resolver.planned_dirs.discard(resolved)
            resolver.planned[resolved] = entry.linkname if entry.type == "symlink" else None
        plan.append((entry, resolved, link_target))

    dest.mkdir(parents=True, exist_ok=True)
    directories: list[tuple[TarEntry, Path]] = []
    try:
        for entry, resolved, link_target in plan:
            target = dest / resolved
            if entry.type == "dir":
                target.mkdir(mode=0o700, parents=True, exist_ok=True)
                directories.append((entry, target))
                continue
            target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            _remove_non_dir(target, where)
            if entry.type == "file":
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(entry.data)
            elif entry.type == "symlink":
                os.symlink(entry.linkname, target)
            elif entry.type == "hardlink":
                os.link(dest / link_target, target, follow_symlinks=False)
            elif entry.type == "fifo":
                os.mkfifo(target, 0o600)
            else:
                kind = stat.S_IFCHR if entry.type == "chr" else stat.S_IFBLK
                os.mknod(target, kind | 0o600, os.makedev(entry.devmajor, entry.devminor))
            _apply_metadata(entry, target, preserve_owner)
        for entry, target in reversed(directories):
            _apply_metadata(entry, target, preserve_owner)
    except OSError as error:
        raise FormatError(
            f"cannot extract into {dest} ({error.strerror}: {error.filename})", where=where
        ) from None


def _remove_non_dir(target: Path, where: str) -> None:
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        raise FormatError(f"{target} is a directory, cannot replace it", where=where)
    os.unlink(target)


def _apply_metadata(entry: TarEntry, target: Path, preserve_owner: bool) -> None:
    if preserve_owner:
        with contextlib.suppress(PermissionError):
            os.chown(target, entry.uid, entry.gid, follow_symlinks=False)
    if entry.type not in ("symlink", "hardlink"):
        os.chmod(target, entry.mode & 0o7777)
    if entry.type != "hardlink":
        try:
            os.utime(target, (entry.mtime, entry.mtime), follow_symlinks=False)
        except OSError as error:
            if error.errno != errno.EPERM:
                raise
