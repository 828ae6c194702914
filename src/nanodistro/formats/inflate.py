"""Decompression budgets: a few MB of hostile gzip must not cost GBs of memory, disk or time.

Every decompression nanodistro does goes through a budget:

- one **in-memory read** (an ``.apk``, an image layer: ``tarball.gzip_members``) may inflate to
  at most :data:`IN_MEMORY_LIMIT` (1 GiB; an ``APKINDEX``: ``apkindex.MAX_INDEX_INFLATED``).
  Packages are read into memory by design and the largest real ones (toolchains) inflate to a
  few hundred MB. While inflating, a read keeps at most ``max(HOLD_FLOOR, HOLD_RATIO x its
  compressed size)`` bytes; past that it only counts, and inflates again only once the total is
  known to fit. Real packages compress 3-10x, so they never notice; a bomb (zeros compress
  ~1000x) is refused after counting, never holding more than 64 MiB plus 32x its own size;
- one **archive streamed to disk** (a source tarball: :func:`open_tar`) may inflate to at most
  :data:`ARCHIVE_LIMIT` (8 GiB, every pass of the reader counted: the largest source trees,
  e.g. LLVM or the kernel, unpack to 1.5 GB);
- **all decompression of one command** shares :data:`COMMAND_LIMIT` (64 GiB): the CLI opens one
  :func:`command_budget` per command (``NANODISTRO_DECOMPRESSION_BUDGET`` overrides it, in bytes
  or with a K/M/G suffix); code running outside one gets the per-read bounds only.

Past any bound the read raises ``FormatError`` naming the file:
``decompressed size exceeds the budget of N bytes (...)``.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import os
import threading
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from nanodistro.errors import ConfigError, FormatError

if TYPE_CHECKING:  # imported where used: every CLI command imports this module
    import tarfile

IN_MEMORY_LIMIT = 1024**3
ARCHIVE_LIMIT = 8 * 1024**3
COMMAND_LIMIT = 64 * 1024**3
HOLD_FLOOR = 64 * 1024**2
HOLD_RATIO = 32
BUDGET_ENV = "NANODISTRO_DECOMPRESSION_BUDGET"

T = TypeVar("T")


def exceeded(limit: int, scope: str, *, where: str) -> FormatError:
    return FormatError(
        f"decompressed size exceeds the budget of {limit} bytes ({scope})", where=where
    )


class DecompressionBudget:
    """Bytes a command may still inflate; shared by every read (and thread) of the command."""

    def __init__(self, total: int = COMMAND_LIMIT) -> None:
        self.total = total
        self.used = 0
        self._lock = threading.Lock()

    def charge(self, count: int, *, where: str) -> None:
        """Account ``count`` more inflated bytes; raise once the command's total is exceeded."""
        with self._lock:
            self.used += count
            over = self.used > self.total
        if over:
            raise exceeded(self.total, "all decompression of this command", where=where)


_scoped: contextvars.ContextVar[DecompressionBudget | None] = contextvars.ContextVar(
    "decompression_budget", default=None
)
# The budget of the CLI's one command, seen also from worker threads (which do not inherit
# context variables): image assembly inflates packages on a thread pool.
_process: DecompressionBudget | None = None


def current_budget() -> DecompressionBudget:
    """The budget in force, or a fresh unshared one (only the per-read bounds then apply)."""
    return _scoped.get() or _process or DecompressionBudget()


@contextlib.contextmanager
def decompression_budget(total: int = COMMAND_LIMIT) -> Iterator[DecompressionBudget]:
    """Share one budget of ``total`` bytes among all reads in this context (one engine call)."""
    budget = DecompressionBudget(total)
    token = _scoped.set(budget)
    try:
        yield budget
    finally:
        _scoped.reset(token)


def parse_size(text: str, *, where: str) -> int:
    """``"1073741824"``, ``"64G"``, ``"512M"``, ``"100k"`` -> bytes."""
    value = text.strip().upper().removesuffix("B").removesuffix("I")
    scale = 1
    if value[-1:] in ("K", "M", "G", "T"):
        scale = 1024 ** ("KMGT".index(value[-1]) + 1)
        value = value[:-1]
    if not value.isdigit() or int(value) <= 0:
        raise ConfigError(f"expected a size in bytes (e.g. 64G), got {text!r}", where=where)
    return int(value) * scale


@contextlib.contextmanager
def command_budget(environ: dict[str, str] | None = None) -> Iterator[DecompressionBudget]:
    """The budget of one CLI command: :data:`COMMAND_LIMIT` or ``$NANODISTRO_DECOMPRESSION_BUDGET``,
    visible to every thread of the process while the command runs."""
    global _process
    env = os.environ if environ is None else environ
    raw = env.get(BUDGET_ENV, "")
    total = parse_size(raw, where=BUDGET_ENV) if raw.strip() else COMMAND_LIMIT
    previous = _process
    with decompression_budget(total) as budget:
        _process = budget
        try:
            yield budget
        finally:
            _process = previous


# ------------------------------------------------------------------------------ streaming


class BudgetedStream(io.RawIOBase):
    """A seekable decompressed stream that counts what it inflates against two budgets.

    ``gzip``/``bz2``/``lzma`` files inflate on ``read`` and also on ``seek``: forward by the
    distance, backward by restarting from the beginning. Both are charged *before* the work is
    done, so a tar header claiming a 100 GB member is refused without inflating it.
    """

    def __init__(
        self, inner: io.BufferedIOBase, *, where: str, limit: int, budget: DecompressionBudget
    ) -> None:
        super().__init__()
        self._inner = inner
        self._where = where
        self._limit = limit
        self._budget = budget
        self._position = 0
        self.inflated = 0

    def _charge(self, count: int) -> None:
        if count <= 0:
            return
        self.inflated += count
        if self.inflated > self._limit:
            raise exceeded(self._limit, "one archive", where=self._where)
        self._budget.charge(count, where=self._where)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def _inner_call(self, call: Callable[[], T]) -> T:
        import lzma

        try:
            return call()
        except (EOFError, OSError, lzma.LZMAError, zlib.error) as error:
            raise FormatError(
                f"corrupt or truncated compressed data ({error or 'unexpected end'})",
                where=self._where,
            ) from None

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        data = self._inner_call(lambda: self._inner.read(len(view)))
        self._charge(len(data))
        view[: len(data)] = data
        self._position += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self._position
        elif whence != io.SEEK_SET:
            raise io.UnsupportedOperation("only absolute and relative seeks")
        # Forward: inflate the distance; backward: inflate again from the start.
        self._charge(offset - self._position if offset >= self._position else offset)
        self._position = self._inner_call(lambda: self._inner.seek(offset))
        return self._position

    def close(self) -> None:
        self._inner.close()
        super().close()


def _decompressor(path: Path) -> io.BufferedIOBase | None:
    """The decompressing reader for ``path`` by its magic bytes, or None for a plain file."""
    import bz2
    import gzip
    import lzma

    with path.open("rb") as probe:
        magic = probe.read(6)
    if magic[:2] == b"\x1f\x8b":
        return gzip.GzipFile(path, "rb")
    if magic[:3] == b"BZh":
        return bz2.BZ2File(path, "rb")
    if magic == b"\xfd7zXZ\x00":
        return lzma.LZMAFile(path, "rb")
    return None


@contextlib.contextmanager
def open_tar(path: Path, *, where: str, limit: int = ARCHIVE_LIMIT) -> Iterator[tarfile.TarFile]:
    """``tarfile.open(path, "r:*")`` whose decompression is bounded by ``limit`` and the
    command's budget (``FormatError`` naming ``where`` past either)."""
    import tarfile

    inner = _decompressor(path)
    if inner is None:
        with tarfile.open(path, "r:") as tar:
            yield tar
        return
    stream = BudgetedStream(inner, where=where, limit=limit, budget=current_budget())
    with stream, tarfile.open(fileobj=io.BufferedReader(stream, 1024 * 1024), mode="r:") as tar:
        yield tar
