"""The no-follow directory reader: a tree on disk, maybe written by untrusted code, to entries.

``entries_from_directory`` walks through descriptors opened with ``O_NOFOLLOW`` beneath the root,
so no symlink in the tree (or on the path from a trusted ``beneath`` directory) is ever followed;
it fixes owners and mtimes for reproducible packages and layers and turns shared inodes into
hardlinks like melange.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from nanodistro.errors import FormatError
from nanodistro.formats.tarentry import EntryType, TarEntry


def entries_from_directory(
    root: Path,
    *,
    mtime: int,
    beneath: Path | None = None,
    uid: int = 0,
    gid: int = 0,
    uname: str = "root",
    gname: str = "root",
    keep_owners: bool = False,
    id_map: Mapping[int, int] | None = None,
    user_names: Mapping[int, str] | None = None,
    group_names: Mapping[int, str] | None = None,
    with_xattrs: bool = True,
) -> list[TarEntry]:
    """Walk ``root`` in Go ``fs.WalkDir`` order and return its entries (root itself excluded).

    Nothing in the tree is followed: each directory is opened through its parent's descriptor
    with ``O_NOFOLLOW | O_DIRECTORY``, each file with ``O_NOFOLLOW``, and type, mode and inode
    come from ``fstat`` of the opened descriptor, so a symlink (even one swapped in while the
    walk runs) becomes a symlink entry holding its target text and is never read through. The
    tree may be written by untrusted code (a build's output). ``root`` itself must be a real
    directory; with ``beneath`` (a directory the caller created and trusts) ``root`` must lie
    under it and every component from ``beneath`` down is opened the same way, so a link
    anywhere on that path is refused instead of followed.

    Owners are fixed to ``uid:gid`` (``uname``/``gname``) unless ``keep_owners``; mtimes are all
    ``mtime`` (SOURCE_DATE_EPOCH). With ``keep_owners`` the on-disk ids are kept after
    ``id_map`` (melange maps the build user 1000 to 0) and named through ``user_names``/
    ``group_names`` (the build guest's passwd/group; 0 is ``root``, unknown ids get no name).
    Files sharing an inode become hardlinks to the first path, as melange does
    (``pkg/tarball/write.go``). A file whose other links lie outside the tree cannot be told
    apart by its inode and is read as a plain file through its descriptor beneath ``root``:
    whoever linked it could read it, so nothing is disclosed that the tree's writer could not
    copy in anyway. Sockets, unreadable entries and links on the path to ``root`` raise
    ``FormatError`` naming the path.
    """
    ids = dict(id_map or {})
    users = {0: "root", **(user_names or {})}
    groups = {0: "root", **(group_names or {})}
    root = Path(root)
    entries: list[TarEntry] = []
    inodes: dict[tuple[int, int], str] = {}

    def owner_of(st: os.stat_result) -> dict[str, object]:
        if not keep_owners:
            return {"uid": uid, "gid": gid, "uname": uname, "gname": gname}
        file_uid, file_gid = ids.get(st.st_uid, st.st_uid), ids.get(st.st_gid, st.st_gid)
        return {
            "uid": file_uid,
            "gid": file_gid,
            "uname": users.get(file_uid, ""),
            "gname": groups.get(file_gid, ""),
        }

    def walk(dir_fd: int, relative: str, depth: int) -> None:
        where = root / relative if relative else root
        if depth > _MAX_WALK_DEPTH:
            raise FormatError(
                f"directories nested deeper than {_MAX_WALK_DEPTH} levels", where=str(where)
            )
        try:
            names = sorted(os.listdir(dir_fd), key=os.fsencode)
        except OSError as error:
            raise FormatError(
                f"cannot list directory ({error.strerror})", where=str(where)
            ) from None
        for name in names:
            rel = f"{relative}/{name}" if relative else name
            path = root / rel
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except OSError as error:
                raise FormatError(f"cannot stat ({error.strerror})", where=str(path)) from None
            if stat.S_ISDIR(st.st_mode):
                fd = _open_nofollow(name, dir_fd, _DIR_FLAGS, path)
                try:
                    st = os.fstat(fd)
                    common = {"mode": stat.S_IMODE(st.st_mode), "mtime": mtime, **owner_of(st)}
                    xattrs = _read_xattrs(fd) if with_xattrs else {}
                    entries.append(TarEntry(rel, "dir", xattrs=xattrs, **common))  # type: ignore[arg-type]
                    walk(fd, rel, depth + 1)
                finally:
                    os.close(fd)
            elif stat.S_ISREG(st.st_mode):
                # O_NONBLOCK: a fifo swapped in after the stat must not block the open
                fd = _open_nofollow(name, dir_fd, _FILE_FLAGS, path)
                try:
                    st = os.fstat(fd)
                    if not stat.S_ISREG(st.st_mode):
                        raise FormatError("changed type while being read", where=str(path))
                    common = {"mode": stat.S_IMODE(st.st_mode), "mtime": mtime, **owner_of(st)}
                    key = (st.st_dev, st.st_ino)
                    if st.st_nlink > 1 and key in inodes:
                        entries.append(TarEntry(rel, "hardlink", linkname=inodes[key], **common))  # type: ignore[arg-type]
                        continue
                    inodes[key] = rel
                    xattrs = _read_xattrs(fd) if with_xattrs else {}
                    data = _read_fd(fd, path)
                finally:
                    os.close(fd)
                entries.append(TarEntry(rel, "file", data=data, xattrs=xattrs, **common))  # type: ignore[arg-type]
            elif stat.S_ISLNK(st.st_mode):
                common = {"mode": stat.S_IMODE(st.st_mode), "mtime": mtime, **owner_of(st)}
                try:
                    target = os.readlink(name, dir_fd=dir_fd)
                except OSError as error:
                    raise FormatError(
                        f"cannot read link ({error.strerror})", where=str(path)
                    ) from None
                entries.append(TarEntry(rel, "symlink", linkname=target, **common))  # type: ignore[arg-type]
            elif stat.S_ISFIFO(st.st_mode):
                common = {"mode": stat.S_IMODE(st.st_mode), "mtime": mtime, **owner_of(st)}
                entries.append(TarEntry(rel, "fifo", **common))  # type: ignore[arg-type]
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                common = {"mode": stat.S_IMODE(st.st_mode), "mtime": mtime, **owner_of(st)}
                kind: EntryType = "chr" if stat.S_ISCHR(st.st_mode) else "blk"
                entries.append(
                    TarEntry(
                        rel,
                        kind,
                        devmajor=os.major(st.st_rdev),
                        devminor=os.minor(st.st_rdev),
                        **common,  # type: ignore[arg-type]
                    )
                )
            else:
                raise FormatError(
                    "sockets and other special files cannot be archived", where=str(path)
                )

    root_fd = _open_root(root, beneath)
    try:
        walk(root_fd, "", 0)
    finally:
        os.close(root_fd)
    return entries


_MAX_WALK_DEPTH = 512
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def _open_nofollow(name: str, dir_fd: int | None, flags: int, path: Path) -> int:
    """``openat(dir_fd, name, flags)`` with ``O_NOFOLLOW``; a link or wrong type is named."""
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except OSError as error:
        try:
            is_link = stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
        except OSError:
            is_link = False
        if is_link:
            raise FormatError(
                f"is a symbolic link to {os.readlink(name, dir_fd=dir_fd)!r}; expected a "
                f"{'directory' if flags & os.O_DIRECTORY else 'file'} (links are not followed)",
                where=str(path),
            ) from None
        raise FormatError(f"cannot open ({error.strerror})", where=str(path)) from None


def _open_root(root: Path, beneath: Path | None) -> int:
    """A descriptor for ``root``, opened without following a link on the way (see above)."""
    if beneath is None:
        return _open_nofollow(str(root), None, _DIR_FLAGS, root)
    beneath = Path(beneath)
    try:
        parts = root.relative_to(beneath).parts
    except ValueError:
        raise FormatError(f"is not beneath {beneath}", where=str(root)) from None
    if any(part in (".", "..") for part in parts):
        raise FormatError(f"is not beneath {beneath}", where=str(root))
    fd = _open_nofollow(str(beneath), None, _DIR_FLAGS & ~os.O_NOFOLLOW, beneath)
    current = beneath
    try:
        for part in parts:
            current = current / part
            next_fd = _open_nofollow(part, fd, _DIR_FLAGS, current)
            os.close(fd)
            fd = next_fd
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_fd(fd: int, path: Path) -> bytes:
    chunks: list[bytes] = []
    try:
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
    except OSError as error:
        raise FormatError(f"cannot read ({error.strerror})", where=str(path)) from None
    return b"".join(chunks)


def _read_xattrs(fd: int) -> dict[str, bytes]:
    try:
        names = os.listxattr(fd)
    except OSError:
        return {}
    # SELinux labels describe the build host, not the package.
    return {
        name: os.getxattr(fd, name)
        for name in sorted(names)
        if not name.startswith("security.selinux")
    }
