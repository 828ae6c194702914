"""Multi-member gzip streams: deterministic members to write, bounded members to read.

APKs and APKINDEX files are concatenated gzip members (signature, control, data); their
signatures and hashes cover each member's compressed bytes, so the reader keeps those next to the
inflated content. Every inflated byte is bounded per read and charged to the command's
decompression budget (``formats/inflate.py``) against decompression bombs.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

from nanodistro.errors import FormatError
from nanodistro.formats import pgzip
from nanodistro.formats.inflate import (
    HOLD_FLOOR,
    HOLD_RATIO,
    IN_MEMORY_LIMIT,
    current_budget,
    exceeded,
)

#: Default ceiling for inflating one gzip stream; packages are read into memory.
DEFAULT_MAX_INFLATED = IN_MEMORY_LIMIT
_IN_CHUNK = 256 * 1024
_OUT_CHUNK = 4 * 1024 * 1024


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
    """Deterministic gzip member: MTIME 0, no FNAME (reference/formats.md §9).

    Written in ``pgzip``'s blocks on all CPUs; up to one block (128 KiB) these are the bytes
    of ``gzip.compress(data, level, mtime=0)``.
    """
    return pgzip.compress(data, level=level)


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
