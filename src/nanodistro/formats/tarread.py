"""Strict tar reader: a tar stream in memory to ``TarEntry`` values, or a ``FormatError``.

Mirrors apk-tools ``src/tar.c`` ``apk_tar_parse``: ``ustar`` magic required (POSIX or GNU
flavour), PAX ``path``/``linkpath``/``size``/``SCHILY.xattr.*``/``APK-TOOLS.checksum.SHA1``
applied to the next entry, GNU ``L``/``K`` long names, a zero block ends the archive and a missing
end-of-archive is fine (signature and control segments have none). Every malformed input raises
``FormatError`` naming ``where``. Reading never touches the filesystem; see ``tarextract``.
"""

from __future__ import annotations

from nanodistro.errors import FormatError
from nanodistro.formats.tarentry import (
    BLOCK,
    PAX_CHECKSUM_KEY,
    XATTR_PREFIX,
    EntryType,
    TarEntry,
)

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
