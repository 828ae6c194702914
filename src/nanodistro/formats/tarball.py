"""The tar and gzip API in one import: re-exports of the modules that each do one part.

Shared by the APK codec (``formats/apk.py``), the APKINDEX codec and the image assembler, which
import from here. The parts:

- ``tarentry``: the ``TarEntry`` model, ``sort_key`` (Go ``fs.WalkDir`` order), ustar constants;
- ``gzipstream``: deterministic gzip members and bounded reading of multi-member streams;
- ``tarwrite``: the deterministic tar writer (Go ``archive/tar`` headers, PAX when needed);
- ``tarread``: the strict tar reader (apk-tools ``apk_tar_parse`` semantics);
- ``tarextract``: path-safety checks and extraction that never writes outside its root;
- ``dirtree``: ``entries_from_directory``, the no-follow reader of a tree on disk.
"""

from __future__ import annotations

from nanodistro.formats.dirtree import entries_from_directory
from nanodistro.formats.gzipstream import (
    DEFAULT_MAX_INFLATED,
    GzipMember,
    gunzip,
    gzip_member,
    gzip_members,
    split_gzip_members,
)
from nanodistro.formats.tarentry import (
    BLOCK,
    END_OF_ARCHIVE,
    PAX_CHECKSUM_KEY,
    XATTR_PREFIX,
    EntryType,
    TarEntry,
    sort_key,
)
from nanodistro.formats.tarextract import check_safe, extract, validate_entries
from nanodistro.formats.tarread import read_tar
from nanodistro.formats.tarwrite import entry_bytes, write_tar

__all__ = [
    "BLOCK",
    "DEFAULT_MAX_INFLATED",
    "END_OF_ARCHIVE",
    "PAX_CHECKSUM_KEY",
    "XATTR_PREFIX",
    "EntryType",
    "GzipMember",
    "TarEntry",
    "check_safe",
    "entries_from_directory",
    "entry_bytes",
    "extract",
    "gunzip",
    "gzip_member",
    "gzip_members",
    "read_tar",
    "sort_key",
    "split_gzip_members",
    "validate_entries",
    "write_tar",
]
