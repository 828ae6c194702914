"""Deterministic tar writer: the bytes of each member exactly as melange and apko write them.

Ustar headers as Go's ``archive/tar`` writes them (reference/formats.md §1.3, §9: ``ustar\\0``
``00`` magic, 6-digit octal checksum), PAX ``x`` headers only when needed — long or non-ASCII
names, ``APK-TOOLS.checksum.SHA1`` per regular file/symlink, ``SCHILY.xattr.*`` — with records
sorted by key and the PAX header named ``<dir>/PaxHeaders.0/<base>`` like Go. Directory names
carry no trailing slash (melange). Integer mtimes only, so no ``mtime`` PAX record appears.
"""

from __future__ import annotations

from collections.abc import Iterable

from nanodistro.formats.tarentry import (
    BLOCK,
    END_OF_ARCHIVE,
    PAX_CHECKSUM_KEY,
    XATTR_PREFIX,
    EntryType,
    TarEntry,
)

_TYPEFLAGS: dict[EntryType, bytes] = {
    "file": b"0",
    "hardlink": b"1",
    "symlink": b"2",
    "chr": b"3",
    "blk": b"4",
    "dir": b"5",
    "fifo": b"6",
}


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
