"""Decompression bombs for tests, written without ever holding the inflated data.

Deflate output after a full flush does not depend on what came before, so the compressed form
of 1 MiB of zeros can be repeated: ``zeros`` bytes cost about ``zeros / 1000`` on disk. The
trailer's CRC is not computed (it would mean hashing GBs); every reader under test refuses
the stream long before it reaches the trailer.
"""

from __future__ import annotations

import struct
import zlib
from typing import BinaryIO

MIB = 1024 * 1024
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH)


def write_gzip_bomb(out: BinaryIO, *, zeros: int, prefix: bytes = b"") -> int:
    """One gzip member inflating to ``prefix`` + ``zeros`` NUL bytes (rounded up to whole
    MiB); returns the compressed size."""
    written = out.write(GZIP_HEADER)
    if prefix:
        written += out.write(_raw_deflate(prefix))
    segment = _raw_deflate(b"\0" * MIB)
    for _ in range(-(-zeros // MIB)):
        written += out.write(segment)
    written += out.write(zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH))
    written += out.write(struct.pack("<II", 0, (len(prefix) + zeros) & 0xFFFFFFFF))
    return written


def tar_header(name: str, size: int) -> bytes:
    """A ustar header for a regular file ``name`` of ``size`` bytes (GNU base-256 if huge)."""
    import tarfile

    info = tarfile.TarInfo(name)
    info.size = size
    return info.tobuf(format=tarfile.GNU_FORMAT)


#: What a refused bomb may cost at most: the interpreter, nanodistro and the bounded buffers.
PEAK_RSS_LIMIT = 500 * MIB


def run_measured(code: str, *args: str) -> tuple[int, str, int]:
    """Run ``code`` (Python, ``sys.argv[1:]`` = ``args``) in a fresh interpreter; its exit
    status, stderr and peak resident memory in bytes."""
    import subprocess
    import sys

    wrapper = (
        "import sys\n"
        "status = 0\n"
        "try:\n"
        + "".join(f"    {line}\n" for line in code.splitlines())
        + "except SystemExit as exit:\n"
        "    status = exit.code if isinstance(exit.code, int) else 1\n"
        # VmHWM, the high-water mark of this process's own memory: ru_maxrss would also count
        # the parent's size (Linux keeps the larger of the two across fork/vfork and exec, so a
        # pytest process grown by earlier tests would be measured instead of this one)
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
        "print('peak', hwm)\n"
        "sys.exit(status)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", wrapper, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    peak = [line for line in result.stdout.splitlines() if line.startswith("peak ")]
    assert peak, result.stderr
    return result.returncode, result.stderr, int(peak[-1].split()[1]) * 1024  # VmHWM: KiB
