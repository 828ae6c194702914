"""The tar member model shared by every tar module: ``TarEntry``, its types and the ustar constants.

``TarEntry`` is what the reader (``tarread``) produces, the writer (``tarwrite``), the extractor
(``tarextract``) and the directory walker (``dirtree``) consume; ``sort_key`` gives the Go
``fs.WalkDir`` order melange and apko write members in. No I/O happens here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

EntryType = Literal["file", "dir", "symlink", "hardlink", "chr", "blk", "fifo"]

BLOCK = 512
END_OF_ARCHIVE = b"\0" * (2 * BLOCK)
PAX_CHECKSUM_KEY = "APK-TOOLS.checksum.SHA1"
XATTR_PREFIX = "SCHILY.xattr."


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
