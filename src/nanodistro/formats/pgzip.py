"""Deterministic parallel gzip: pigz's block scheme, one gzip member, bytes independent of threads.

The input is cut into fixed ``block``-sized pieces. Each piece is raw-deflated on its own
(``zlib.compressobj(level, wbits=-15, zdict=<previous 32 KiB of input>)``) and ends with a
``Z_SYNC_FLUSH`` (the last one with ``Z_FINISH``), so every piece ends on a byte boundary and the
pieces concatenate into one valid deflate stream. A fixed header and the CRC-32 and ISIZE of the
whole input make it one gzip member that any inflater reads (``gzip -t``, zlib, apk-tools).

What a piece compresses to depends only on its bytes, the 32 KiB before it, ``block`` and
``level`` — never on which thread ran it, how many threads there were or the CPU — so the same
input always gives the same bytes (with the same zlib release, as for any zlib writer; stock
zlib's deflate has no CPU-specific code paths). zlib and hashlib release the GIL, so threads
compress blocks on all cores. An input of at most one block is one piece with no dictionary: exactly the bytes
``gzip.compress(data, level, mtime=0)`` gives (the header is zlib's own: MTIME 0, no FNAME, XFL
by level, OS 3), so small members are the same as a single-stream writer's.
"""

from __future__ import annotations

import functools
import hashlib
import os
import struct
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from nanodistro.errors import ConfigError

#: pigz's default block size. Part of the output's identity: changing it changes every digest.
BLOCK = 128 * 1024
#: deflate's window; each block is primed with this much of the input before it.
WINDOW = 32 * 1024
#: Overrides the number of compression threads (default: every CPU). Never changes the bytes.
THREADS_ENV = "NANODISTRO_THREADS"


@dataclass(frozen=True)
class Compressed:
    """A gzip member and the SHA-256 (hex) of its input and of itself, computed on the way."""

    gz: bytes
    input_sha256: str
    gz_sha256: str


def default_threads(environ: dict[str, str] | None = None) -> int:
    """``$NANODISTRO_THREADS`` if set (a positive integer), else the number of CPUs."""
    env = os.environ if environ is None else environ
    raw = env.get(THREADS_ENV, "").strip()
    if not raw:
        return os.cpu_count() or 1
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"expected a positive number of threads, got {raw!r}", where=THREADS_ENV)
    return int(raw)


def gzip_header(level: int) -> bytes:
    """The 10 header bytes zlib writes for ``wbits=31``: MTIME 0, no FNAME, XFL by level, OS 3."""
    xfl = 2 if level == 9 else 4 if level < 2 else 0
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00" + bytes((xfl, 3))


def _deflate_block(view: memoryview, start: int, block: int, level: int) -> bytes:
    """Raw deflate of ``view[start:start+block]`` primed with the 32 KiB before it."""
    if start:
        dictionary = bytes(view[max(0, start - WINDOW) : start])
        compressor = zlib.compressobj(level, zlib.DEFLATED, -15, zdict=dictionary)
    else:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
    body = compressor.compress(view[start : start + block])
    last = start + block >= len(view)
    return body + compressor.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)


def compress_hashed(
    data: bytes, *, level: int, block: int = BLOCK, threads: int | None = None
) -> Compressed:
    """One gzip member of ``data`` in the block scheme, with input and output SHA-256.

    ``threads`` (default :func:`default_threads`) only changes the speed, never the bytes.
    """
    if block < 1 or not 0 <= level <= 9:
        raise ValueError(f"expected a positive block size and a level 0-9, got {block}, {level}")
    view = memoryview(data)
    starts = range(0, max(len(data), 1), block)  # an empty input is one empty final block
    workers = min(threads or default_threads(), len(starts))
    header = gzip_header(level)
    input_hash = hashlib.sha256()
    gz_hash = hashlib.sha256(header)
    crc = 0
    parts = [header]

    def collect(pieces: Iterable[Callable[[], bytes]]) -> None:
        # The input's hash and CRC run here while the pool deflates: hash block i, then wait.
        nonlocal crc
        for start, piece in zip(starts, pieces, strict=True):
            chunk = view[start : start + block]
            input_hash.update(chunk)
            crc = zlib.crc32(chunk, crc)
            done = piece()
            gz_hash.update(done)
            parts.append(done)

    if workers <= 1:
        collect(functools.partial(_deflate_block, view, s, block, level) for s in starts)
    else:
        # Imported here: concurrent.futures (and logging, which it loads) would cost every
        # command that only reads gzip, e.g. `nanodistro resolve`, more than its solve.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pgzip") as pool:
            futures = [pool.submit(_deflate_block, view, s, block, level) for s in starts]
            collect(future.result for future in futures)
    trailer = struct.pack("<II", crc & 0xFFFFFFFF, len(data) & 0xFFFFFFFF)
    gz_hash.update(trailer)
    parts.append(trailer)
    return Compressed(b"".join(parts), input_hash.hexdigest(), gz_hash.hexdigest())


def compress(data: bytes, *, level: int, block: int = BLOCK, threads: int | None = None) -> bytes:
    """One gzip member of ``data`` in the block scheme (see the module docstring)."""
    return compress_hashed(data, level=level, block=block, threads=threads).gz
