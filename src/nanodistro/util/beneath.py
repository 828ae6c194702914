"""Host-side file operations beneath a root directory that never follow a symbolic link.

A sandbox root is filled from packages, and a package may place ``etc -> /host/dir``. The host
(running as root) then adds accounts, mount points and caches to that root: every such write must
land inside the root. ``Beneath`` holds a descriptor of the root and walks every path one
component at a time with ``O_NOFOLLOW`` (the ``openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)``
semantics, without needing Linux 5.6): ``..`` is refused, and a component that is a symbolic link
raises ``UnsafePathError`` naming it. Only the final component of ``lstat`` and ``symlink`` may be
a link (it is looked at, never through).

Writes are atomic (a temporary file beneath the same directory, then ``renameat``); a rename
replaces a link itself, never its target.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path
from types import TracebackType

from nanodistro.errors import UnsafePathError

_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Beneath:
    """A directory tree whose paths are resolved beneath ``root`` without following links."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        try:
            # the root itself is a directory the host created: it is the one path we trust
            self.fd = os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as error:
            raise UnsafePathError(
                f"cannot open the root directory ({error.strerror})", where=str(self.root)
            ) from None

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Beneath:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # ---- path handling ------------------------------------------------------------------

    def _parts(self, rel: str) -> list[str]:
        parts = [p for p in str(rel).split("/") if p and p != "."]
        if ".." in parts:
            raise UnsafePathError(f"{rel!r} contains '..'", where=str(self.root))
        return parts

    def _refuse(self, parts: list[str], dir_fd: int, name: str) -> UnsafePathError:
        path = "/".join(parts)
        try:
            target = os.readlink(name, dir_fd=dir_fd)
        except OSError:
            return UnsafePathError(
                f"/{path} is not a directory; refusing to write beneath it", where=str(self.root)
            )
        return UnsafePathError(
            f"/{path} is a symbolic link (to {target!r}) placed by a package; refusing to "
            "follow it while assembling the root",
            where=str(self.root / path),
        )

    def _open_dir(self, parts: list[str], *, create: bool, mode: int = 0o755) -> int | None:
        """A descriptor of directory ``parts`` (caller closes); None if missing and not create."""
        current = os.dup(self.fd)
        try:
            for index, name in enumerate(parts):
                try:
                    child = os.open(name, _DIR_FLAGS, dir_fd=current)
                except FileNotFoundError:
                    if not create:
                        os.close(current)
                        return None
                    created = True
                    try:
                        os.mkdir(name, mode, dir_fd=current)
                    except FileExistsError:
                        created = False
                    try:
                        child = os.open(name, _DIR_FLAGS, dir_fd=current)
                    except OSError as error:
                        if error.errno in (errno.ELOOP, errno.ENOTDIR):
                            raise self._refuse(parts[: index + 1], current, name) from None
                        raise
                    if created:  # the exact mode, whatever the caller's umask
                        os.chmod(f"/proc/self/fd/{child}", mode)
                except OSError as error:
                    if error.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise self._refuse(parts[: index + 1], current, name) from None
                    raise
                os.close(current)
                current = child
            return current
        except BaseException:
            os.close(current)
            raise

    def _parent(self, rel: str, *, create: bool) -> tuple[int | None, str]:
        parts = self._parts(rel)
        if not parts:
            raise UnsafePathError("the root itself is not a file", where=str(self.root))
        return self._open_dir(parts[:-1], create=create), parts[-1]

    # ---- queries ------------------------------------------------------------------------

    def lstat(self, rel: str) -> os.stat_result | None:
        """``lstat`` of ``rel`` (None if missing); its parents must not be links."""
        parent, name = self._parent(rel, create=False)
        if parent is None:
            return None
        try:
            return os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return None
        finally:
            os.close(parent)

    def listdir(self, rel: str) -> list[str]:
        fd = self._open_dir(self._parts(rel), create=False)
        if fd is None:
            raise FileNotFoundError(errno.ENOENT, "no such directory", str(self.root / rel))
        try:
            listing = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
        finally:
            os.close(fd)
        try:
            return os.listdir(listing)
        finally:
            os.close(listing)

    def read_bytes(self, rel: str) -> bytes:
        parent, name = self._parent(rel, create=False)
        if parent is None:
            raise FileNotFoundError(errno.ENOENT, "no such file", str(self.root / rel))
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise self._refuse(self._parts(rel), parent, name) from None
            raise
        finally:
            os.close(parent)
        with os.fdopen(fd, "rb") as handle:
            return handle.read()

    # ---- mutations ----------------------------------------------------------------------

    def makedirs(self, rel: str, mode: int = 0o755) -> None:
        fd = self._open_dir(self._parts(rel), create=True, mode=mode)
        if fd is not None:
            os.close(fd)

    def write(self, rel: str, data: bytes | str, mode: int = 0o644) -> None:
        """Atomically replace ``rel`` with ``data`` (parents created, none may be a link)."""
        raw = data.encode() if isinstance(data, str) else data
        parent, name = self._parent(rel, create=True)
        assert parent is not None
        tmp = f".{name}.nanodistro-{os.getpid()}.tmp"
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=parent)
            fd = os.open(
                tmp,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
                dir_fd=parent,
            )
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(raw)
                    os.fchmod(handle.fileno(), mode)
                existing = self._stat_at(parent, name)
                if existing is not None and stat.S_ISDIR(existing.st_mode):
                    raise UnsafePathError(
                        f"/{'/'.join(self._parts(rel))} is a directory, expected a file",
                        where=str(self.root),
                    )
                os.rename(tmp, name, src_dir_fd=parent, dst_dir_fd=parent)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=parent)
                raise
        finally:
            os.close(parent)

    def write_if_missing(self, rel: str, data: bytes | str, mode: int = 0o644) -> bool:
        """Write ``rel`` unless something (a file, or a link: not followed) is already there."""
        if self.lstat(rel) is not None:
            return False
        self.write(rel, data, mode)
        return True

    def touch(self, rel: str, mode: int = 0o644) -> None:
        """Create an empty file if nothing is there (an existing link is not followed)."""
        parent, name = self._parent(rel, create=True)
        assert parent is not None
        try:
            fd = os.open(
                name,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                mode,
                dir_fd=parent,
            )
            try:
                os.fchmod(fd, mode)
            finally:
                os.close(fd)
        except FileExistsError:
            pass  # something (maybe a link: not followed, not touched) is already there
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise self._refuse(self._parts(rel), parent, name) from None
            raise
        finally:
            os.close(parent)

    def symlink(self, target: str, rel: str) -> None:
        parent, name = self._parent(rel, create=True)
        assert parent is not None
        try:
            os.symlink(target, name, dir_fd=parent)
        finally:
            os.close(parent)

    def chmod(self, rel: str, mode: int) -> None:
        parent, name = self._parent(rel, create=False)
        if parent is None:
            raise FileNotFoundError(errno.ENOENT, "no such file", str(self.root / rel))
        try:
            fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        finally:
            os.close(parent)
        try:
            if stat.S_ISLNK(os.fstat(fd).st_mode):
                raise UnsafePathError(
                    f"/{'/'.join(self._parts(rel))} is a symbolic link; not changing its target",
                    where=str(self.root),
                )
            # an O_PATH descriptor cannot be fchmod-ed; its /proc magic link names it exactly
            os.chmod(f"/proc/self/fd/{fd}", mode)
        finally:
            os.close(fd)

    @staticmethod
    def _stat_at(parent: int, name: str) -> os.stat_result | None:
        try:
            return os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return None


def write_beneath(root: Path, rel: str, data: bytes | str, mode: int = 0o644) -> None:
    """Atomically write ``root/rel`` without following any link below ``root``."""
    with Beneath(root) as tree:
        tree.write(rel, data, mode)


def makedirs_beneath(root: Path, rel: str, mode: int = 0o755) -> None:
    with Beneath(root) as tree:
        tree.makedirs(rel, mode)
