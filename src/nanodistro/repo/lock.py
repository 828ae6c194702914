"""An exclusive lock on a repository so concurrent publishers serialize (``<repo>/.lock``).

``fcntl.flock`` locks are released by the kernel when the process dies, so a crashed publisher
never leaves the repository locked.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from nanodistro.errors import RepositoryError

LOCK_NAME = ".lock"


@contextlib.contextmanager
def repository_lock(repo: Path, *, timeout: float | None = 600.0) -> Iterator[None]:
    """Hold ``<repo>/.lock`` exclusively; ``RepositoryError`` after ``timeout`` seconds."""
    repo = Path(repo)
    try:
        repo.mkdir(parents=True, exist_ok=True)
        fd = os.open(repo / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as error:
        raise RepositoryError(
            f"cannot open the repository lock ({error.strerror})", where=str(repo)
        ) from None
    try:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    raise RepositoryError(
                        f"repository is locked by another publisher for more than {timeout:g} s",
                        where=str(repo / LOCK_NAME),
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
