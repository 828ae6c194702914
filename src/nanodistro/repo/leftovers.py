"""Remove the temporary files a crashed publisher left behind.

``util.atomic.atomic_writer`` writes ``.<name>.<8 random chars>.tmp`` beside its target and
renames it into place; a publisher killed in between leaves a full-size package (or index)
there for good. The next publisher removes them while it holds the repository lock
(``repo.lock``): every publisher writes only under that lock, so no live publisher owns such a
file then. Files modified after this process started are left alone all the same, in case
something wrote into the repository without taking the lock.
"""

from __future__ import annotations

import os
import re
import stat
import time
from collections.abc import Iterable
from pathlib import Path

__all__ = ["LEFTOVER", "remove_leftovers"]

#: The temporary names of packages and indexes (tempfile.mkstemp's 8 characters).
#: Package provenance (``<file>.apk.intoto.jsonl``) is written the same way.
LEFTOVER = re.compile(r"^\.(?:.+\.apk(?:\.intoto\.jsonl)?|APKINDEX\.tar\.gz)\.[a-z0-9_]{8}\.tmp$")

_STARTED = time.time()  # when this process imported the module: before it wrote anything


def remove_leftovers(directories: Iterable[Path], *, before: float | None = None) -> list[Path]:
    """Delete leftover temporary files in ``directories`` (not recursively) older than
    ``before`` (default: this process's start). The caller holds the repository lock."""
    cutoff = _STARTED if before is None else before
    removed: list[Path] = []
    for directory in directories:
        try:
            names = os.listdir(directory)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for name in sorted(names):
            if not LEFTOVER.match(name):
                continue
            path = Path(directory) / name
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            if stat.S_ISREG(st.st_mode) and st.st_mtime < cutoff:
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed
