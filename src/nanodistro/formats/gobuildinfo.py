"""Go build information from an ELF binary's ``.go.buildinfo`` section (what ``go version -m``
prints): the Go toolchain version, the main module and every dependency module with versions.

Layout (Go ``debug/buildinfo``): a 32-byte header — the magic ``\\xff Go buildinf:``, the pointer
size, a flags byte (bit 0 big-endian, bit 1 "version inline") — then:

- **inline** (Go 1.18+): two uvarint-length-prefixed strings, the toolchain version and the
  module info; the module info is wrapped in 16-byte sentinels that are stripped;
- **pointer** (before 1.18): two pointers (at 16 and 16+ptrsize) to Go string headers
  ``{data pointer, length}``, resolved through the ELF sections' virtual addresses. Handled for
  binaries whose strings live in an allocated section (the usual case); anything else gives
  ``None`` (no build info), never a wrong answer.

Module info lines: ``path\\t<main package>``, ``mod\\t<path>\\t<version>\\t<sum>``,
``dep\\t<path>\\t<version>\\t<sum>``, ``=>\\t<path>\\t<version>\\t<sum>`` (replaces the line
before it), ``build\\t<key>=<value>``. Only the section named ``.go.buildinfo`` is read (Go
writes it for ELF); stripped binaries keep it.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

__all__ = ["MAGIC", "BuildInfo", "GoModule", "encode_inline", "parse_modinfo", "read_buildinfo"]

MAGIC = b"\xff Go buildinf:"
_FLAG_BIG_ENDIAN = 0x1
_FLAG_INLINE = 0x2
_HEADER = 32
# The sentinels cmd/go wraps module info in (any 16 bytes work for the reader; these are Go's).
_START = bytes.fromhex("3077af0c9274080241e1c107e6d618e6")
_END = bytes.fromhex("f932433186182072008242104116d8f2")


@dataclass(frozen=True)
class GoModule:
    path: str
    version: str
    sum: str = ""


@dataclass
class BuildInfo:
    go_version: str  # "go1.22.1"
    path: str = ""  # main package path
    main: GoModule | None = None
    deps: list[GoModule] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)


def _uvarint(data: bytes, offset: int) -> tuple[int, int] | None:
    value = shift = 0
    while offset < len(data) and shift < 64:
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, offset
        shift += 7
    return None


def _inline_strings(data: bytes) -> tuple[bytes, bytes] | None:
    strings: list[bytes] = []
    offset = _HEADER
    for _ in range(2):
        decoded = _uvarint(data, offset)
        if decoded is None or decoded[1] + decoded[0] > len(data):
            return None
        length, offset = decoded
        strings.append(data[offset : offset + length])
        offset += length
    return strings[0], strings[1]


class _Memory:
    """Virtual-address reads through the allocated sections of an ELF file."""

    def __init__(self, elf: ELFFile) -> None:
        self._sections = [
            (s["sh_addr"], s["sh_size"], s)
            for s in elf.iter_sections()
            if s["sh_addr"] and s["sh_type"] != "SHT_NOBITS"
        ]

    def read(self, address: int, size: int) -> bytes | None:
        for start, length, section in self._sections:
            if start <= address and address + size <= start + length:
                offset = address - start
                return bytes(section.data()[offset : offset + size])
        return None


def _pointer_strings(elf: ELFFile, data: bytes) -> tuple[bytes, bytes] | None:
    ptr_size = data[14]
    if ptr_size not in (4, 8):
        return None
    endian = ">" if data[15] & _FLAG_BIG_ENDIAN else "<"
    fmt = endian + ("Q" if ptr_size == 8 else "I")
    memory = _Memory(elf)

    def string_at(address: int) -> bytes | None:
        header = memory.read(address, 2 * ptr_size)
        if header is None:
            return None
        pointer, length = (
            struct.unpack(fmt, header[:ptr_size])[0],
            struct.unpack(fmt, header[ptr_size:])[0],
        )
        if length > 1 << 20:
            return None
        text = memory.read(pointer, length) if length else b""
        return text

    version = string_at(struct.unpack(fmt, data[16 : 16 + ptr_size])[0])
    modinfo = string_at(struct.unpack(fmt, data[16 + ptr_size : 16 + 2 * ptr_size])[0])
    if version is None or modinfo is None:
        return None
    return version, modinfo


def parse_modinfo(go_version: str, modinfo: str) -> BuildInfo:
    """The module info text (sentinels already stripped) as :class:`BuildInfo`."""
    info = BuildInfo(go_version=go_version)
    last: str | None = None  # "mod" or "dep": what a "=>" line replaces
    for line in modinfo.splitlines():
        parts = line.split("\t")
        kind = parts[0]
        if kind == "path" and len(parts) >= 2:
            info.path = parts[1]
        elif kind in ("mod", "dep", "=>") and len(parts) >= 3:
            module = GoModule(parts[1], parts[2], parts[3] if len(parts) > 3 else "")
            if kind == "mod":
                info.main, last = module, "mod"
            elif kind == "dep":
                info.deps.append(module)
                last = "dep"
            elif last == "mod":
                info.main = module
            elif last == "dep" and info.deps:
                info.deps[-1] = module
        elif kind == "build" and len(parts) >= 2:
            key, _, value = parts[1].partition("=")
            info.settings[key] = value
    return info


def read_buildinfo(data: bytes) -> BuildInfo | None:
    """The build info of an ELF Go binary; None for anything else (not ELF, not Go)."""
    if data[:4] != b"\x7fELF":
        return None
    try:
        elf = ELFFile(io.BytesIO(data))
        section = elf.get_section_by_name(".go.buildinfo")
        if section is None or section["sh_type"] == "SHT_NOBITS":
            return None
        raw = bytes(section.data())
        if len(raw) < _HEADER or raw[:14] != MAGIC:
            return None
        strings = _inline_strings(raw) if raw[15] & _FLAG_INLINE else _pointer_strings(elf, raw)
    except (ELFError, struct.error, ValueError, IndexError):
        return None
    if strings is None or not strings[0]:
        return None
    version, modinfo = strings
    if len(modinfo) >= 33 and modinfo[-17:-16] == b"\n":
        modinfo = modinfo[16:-16]
    return parse_modinfo(version.decode("utf-8", "replace"), modinfo.decode("utf-8", "replace"))


def _put_uvarint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_inline(go_version: str, modinfo: str, *, ptr_size: int = 8) -> bytes:
    """A Go 1.18+ inline ``.go.buildinfo`` section body (the writer side, for tests and tools)."""
    wrapped = _START + modinfo.encode() + _END
    header = MAGIC + bytes([ptr_size, _FLAG_INLINE]) + bytes(_HEADER - len(MAGIC) - 2)
    body = _put_uvarint(len(go_version)) + go_version.encode()
    return header + body + _put_uvarint(len(wrapped)) + wrapped
