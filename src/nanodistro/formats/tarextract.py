"""Safe extraction: path-safety checks on tar entries and writing them under a root, never outside.

``check_safe``/``validate_entries`` reject absolute paths, ``..``, escaping symlinks, dangling
hardlinks and (unless allowed) device nodes. ``extract`` validates every entry first and writes
nothing when one is unsafe; it resolves paths like a chroot would, so symlinks inside the
destination (``lib -> usr/lib``) are followed but can never lead outside it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from nanodistro.errors import FormatError, UnsafePathError
from nanodistro.formats.tarentry import TarEntry


def _components(path: str, *, where: str, what: str) -> list[str]:
    if not path or "\0" in path:
        raise UnsafePathError(f"{what} {path!r} is empty or contains NUL", where=where)
    if path.startswith("/"):
        raise UnsafePathError(f"{what} {path!r} is absolute", where=where)
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafePathError(f"{what} {path!r} contains '..'", where=where)
    return parts


def _symlink_escapes(path: str, target: str) -> bool:
    """Whether ``target`` of a symlink at ``path`` resolves above the root (chroot semantics)."""
    stack = [] if target.startswith("/") else path.split("/")[:-1]
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not stack:
                return True
            stack.pop()
        else:
            stack.append(part)
    return False


def check_safe(
    entry: TarEntry, where: str, *, allow_devices: bool = False, max_size: int | None = None
) -> None:
    """Raise ``UnsafePathError`` if ``entry`` could write outside its root or is not allowed.

    Rejected: absolute paths, ``..`` components, NUL bytes, symlinks whose target (relative to
    the link, or absolute meaning the root) climbs above the root, hardlinks to unsafe paths,
    device nodes unless ``allow_devices``, files larger than ``max_size``.
    """
    if entry.path == ".":
        return
    _components(entry.path, where=where, what="path")
    if entry.type == "symlink":
        if not entry.linkname or "\0" in entry.linkname:
            raise UnsafePathError(f"symlink {entry.path!r} has an empty target", where=where)
        if _symlink_escapes(entry.path, entry.linkname):
            raise UnsafePathError(
                f"symlink {entry.path!r} -> {entry.linkname!r} points outside the root",
                where=where,
            )
    elif entry.type == "hardlink":
        _components(entry.linkname, where=where, what=f"hardlink target of {entry.path!r}")
    elif entry.type in ("chr", "blk") and not allow_devices:
        raise UnsafePathError(
            f"device node {entry.path!r} ({entry.type} {entry.devmajor}:{entry.devminor}) "
            "is not allowed",
            where=where,
        )
    if max_size is not None and entry.size > max_size:
        raise UnsafePathError(
            f"file {entry.path!r} is {entry.size} bytes, more than the {max_size} allowed",
            where=where,
        )


def validate_entries(
    entries: Sequence[TarEntry],
    where: str,
    *,
    allow_devices: bool = False,
    max_size: int | None = None,
) -> None:
    """``check_safe`` on every entry, plus: hardlinks must name an earlier regular file."""
    files: set[str] = set()
    for entry in entries:
        check_safe(entry, where, allow_devices=allow_devices, max_size=max_size)
        if entry.type == "file":
            files.add(entry.path)
        elif entry.type == "hardlink" and entry.linkname.strip("/") not in files:
            raise UnsafePathError(
                f"hardlink {entry.path!r} -> {entry.linkname!r} does not name an earlier file "
                "in the archive",
                where=where,
            )


class _RootResolver:
    """Resolve archive paths inside ``dest`` like a chroot: symlinks (already on disk or created
    by earlier entries) are followed, but never above ``dest``."""

    _MAX_LINKS = 40

    def __init__(self, dest: Path, where: str) -> None:
        self.dest = dest
        self.where = where
        # canonical relative path -> symlink target, or None for "exists, not a symlink"
        self.planned: dict[str, str | None] = {}
        self.planned_dirs: set[str] = set()

    def _symlink_target(self, rel: str) -> str | None:
        if rel in self.planned:
            return self.planned[rel]
        try:
            st = os.lstat(self.dest / rel)
        except FileNotFoundError:
            return None
        except OSError as error:
            raise UnsafePathError(
                f"cannot inspect {rel!r} ({error.strerror})", where=self.where
            ) from None
        if stat.S_ISLNK(st.st_mode):
            return os.readlink(self.dest / rel)
        return None

    def _is_dir(self, rel: str) -> bool:
        if rel in self.planned_dirs:
            return True
        if rel in self.planned:
            return False
        return (self.dest / rel).is_dir() and not (self.dest / rel).is_symlink()

    def resolve(self, path: str, *, follow_last: bool) -> str:
        stack: list[str] = []
        todo = [p for p in path.split("/") if p]
        links = 0
        while todo:
            part = todo.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                if not stack:
                    raise UnsafePathError(f"{path!r} resolves outside the root", where=self.where)
                stack.pop()
                continue
            stack.append(part)
            if not todo and not follow_last:
                break
            target = self._symlink_target("/".join(stack))
            if target is not None:
                links += 1
                if links > self._MAX_LINKS:
                    raise UnsafePathError(
                        f"{path!r}: too many levels of symlinks", where=self.where
                    )
                stack.pop()
                if target.startswith("/"):
                    stack = []
                todo = [p for p in target.split("/") if p] + todo
            elif todo:
                rel = "/".join(stack)
                if not self._is_dir(rel) and (rel in self.planned or (self.dest / rel).exists()):
                    raise UnsafePathError(
                        f"{path!r}: {rel!r} exists and is not a directory", where=self.where
                    )
        return "/".join(stack)


def extract(
    entries: Sequence[TarEntry],
    dest: Path,
    *,
    where: str = "archive",
    allow_devices: bool = False,
    preserve_owner: bool = False,
    max_size: int | None = None,
) -> None:
    """Write ``entries`` under ``dest``; never outside it.

    Everything is validated and every destination resolved before the first write, so an unsafe
    archive leaves ``dest`` untouched. Symlinks met on the way are followed inside ``dest`` only.
    Owners are applied only with ``preserve_owner`` (needs root); mtimes are always applied.
    """
    dest = Path(dest)
    validate_entries(entries, where, allow_devices=allow_devices, max_size=max_size)
    resolver = _RootResolver(dest, where)
    plan: list[tuple[TarEntry, str, str]] = []  # entry, resolved path, resolved hardlink target
    for entry in entries:
        if entry.path == ".":
            continue
        resolved = resolver.resolve(entry.path, follow_last=entry.type == "dir")
        if not resolved:
            continue
        link_target = ""
        if entry.type == "hardlink":
            link_target = resolver.resolve(entry.linkname, follow_last=False)
        if entry.type != "dir" and resolver._is_dir(resolved):
            raise FormatError(
                f"{entry.path!r} would replace a directory with a {entry.type}", where=where
            )
        if entry.type == "dir":
            resolver.planned_dirs.add(resolved)
            resolver.planned[resolved] = None
        else:
            resolver.planned_dirs.discard(resolved)
            resolver.planned[resolved] = entry.linkname if entry.type == "symlink" else None
        plan.append((entry, resolved, link_target))

    dest.mkdir(parents=True, exist_ok=True)
    directories: list[tuple[TarEntry, Path]] = []
    try:
        for entry, resolved, link_target in plan:
            target = dest / resolved
            if entry.type == "dir":
                target.mkdir(mode=0o700, parents=True, exist_ok=True)
                directories.append((entry, target))
                continue
            target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            _remove_non_dir(target, where)
            if entry.type == "file":
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(entry.data)
            elif entry.type == "symlink":
                os.symlink(entry.linkname, target)
            elif entry.type == "hardlink":
                os.link(dest / link_target, target, follow_symlinks=False)
            elif entry.type == "fifo":
                os.mkfifo(target, 0o600)
            else:
                kind = stat.S_IFCHR if entry.type == "chr" else stat.S_IFBLK
                os.mknod(target, kind | 0o600, os.makedev(entry.devmajor, entry.devminor))
            _apply_metadata(entry, target, preserve_owner)
        for entry, target in reversed(directories):
            _apply_metadata(entry, target, preserve_owner)
    except OSError as error:
        raise FormatError(
            f"cannot extract into {dest} ({error.strerror}: {error.filename})", where=where
        ) from None


def _remove_non_dir(target: Path, where: str) -> None:
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        raise FormatError(f"{target} is a directory, cannot replace it", where=where)
    os.unlink(target)


def _apply_metadata(entry: TarEntry, target: Path, preserve_owner: bool) -> None:
    if preserve_owner:
        with contextlib.suppress(PermissionError):
            os.chown(target, entry.uid, entry.gid, follow_symlinks=False)
    if entry.type not in ("symlink", "hardlink"):
        os.chmod(target, entry.mode & 0o7777)
    if entry.type != "hardlink":
        try:
            os.utime(target, (entry.mtime, entry.mtime), follow_symlinks=False)
        except OSError as error:
            if error.errno != errno.EPERM:
                raise
