"""Reading a folder of the git work tree as a revision holds it (``git ls-tree`` + ``git cat-file
--batch``), for rules that compare the working files with a base state (``advisory validate``).

The ``git`` command is the only dependency; every failure is a :class:`ConfigError` naming the
work tree and revision, since a bad revision is the user's input.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from nanodistro.errors import ConfigError

__all__ = ["GitFolder", "files_at_revision", "git_folder"]

_TIMEOUT = 120


@dataclass(frozen=True)
class GitFolder:
    """A folder inside a git work tree: ``top`` (the work tree) and ``relative`` (POSIX path of
    the folder below it, ``""`` for the top itself)."""

    top: Path
    relative: str
    ignored: bool  # git ignores the folder: its files are never committed


def _git(cwd: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            ["git", "-C", str(cwd), *args],
            input=stdin,
            capture_output=True,
            timeout=_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise ConfigError("git is not installed", where=str(cwd)) from None
    except subprocess.TimeoutExpired:
        raise ConfigError(f"git {args[0]} took longer than {_TIMEOUT} s", where=str(cwd)) from None


def git_folder(folder: Path) -> GitFolder | None:
    """The work tree ``folder`` is in (it need not exist yet), or None outside git (or without
    git installed)."""
    folder = folder.resolve()
    probe = folder
    while not probe.is_dir() and probe != probe.parent:
        probe = probe.parent
    try:
        result = _git(probe, "rev-parse", "--show-toplevel")
    except ConfigError:
        return None
    if result.returncode != 0:
        return None
    top = Path(result.stdout.decode("utf-8", "replace").strip()).resolve()
    try:
        relative = folder.relative_to(top).as_posix()
    except ValueError:
        return None
    relative = "" if relative == "." else relative
    ignored = bool(relative) and _git(top, "check-ignore", "-q", relative).returncode == 0
    return GitFolder(top=top, relative=relative, ignored=ignored)


def resolve_commit(top: Path, revision: str) -> str:
    """The full commit id ``revision`` names in the work tree at ``top``."""
    if revision.startswith("-"):
        raise ConfigError(f"{revision!r} is not a git revision", field="--base", where=str(top))
    result = _git(
        top, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{revision}^{{commit}}"
    )
    if result.returncode != 0:
        raise ConfigError(
            f"{revision!r} is not a commit of this git work tree", field="--base", where=str(top)
        )
    return result.stdout.decode("ascii").strip()


def files_at_revision(folder: GitFolder, revision: str, suffix: str) -> dict[str, bytes]:
    """File name -> bytes of every file directly in ``folder`` whose name ends with ``suffix``,
    as commit ``revision`` holds them (empty if the folder did not exist then)."""
    commit = resolve_commit(folder.top, revision)
    prefix = f"{folder.relative}/" if folder.relative else ""
    listing = _git(folder.top, "ls-tree", "-z", "--full-tree", commit, "--", prefix or ".")
    if listing.returncode != 0:
        raise ConfigError(
            f"git ls-tree failed: {listing.stderr.decode('utf-8', 'replace').strip()}",
            where=f"{folder.top}@{revision}",
        )
    paths: list[str] = []
    for record in listing.stdout.split(b"\0"):
        if not record:
            continue
        meta, _, raw_path = record.partition(b"\t")
        path = raw_path.decode("utf-8", "surrogateescape")
        name = path[len(prefix) :]
        # blobs only (no submodules or sub-folders), one level, names a line can carry
        if meta.split(b" ")[1:2] == [b"blob"] and name.endswith(suffix) and "\n" not in path:
            paths.append(path)
    if not paths:
        return {}
    request = "".join(f"{commit}:{path}\n" for path in paths).encode("utf-8", "surrogateescape")
    batch = _git(folder.top, "cat-file", "--batch", stdin=request)
    if batch.returncode != 0:
        raise ConfigError(
            f"git cat-file failed: {batch.stderr.decode('utf-8', 'replace').strip()}",
            where=f"{folder.top}@{revision}",
        )
    out: dict[str, bytes] = {}
    data = batch.stdout
    offset = 0
    for path in paths:
        end = data.index(b"\n", offset)
        header = data[offset:end].split(b" ")
        if len(header) != 3 or header[1] != b"blob":
            raise ConfigError(
                f"git cat-file: unexpected answer for {path}", where=f"{folder.top}@{revision}"
            )
        size = int(header[2])
        out[path[len(prefix) :]] = data[end + 1 : end + 1 + size]
        offset = end + 1 + size + 1  # content is followed by a newline
    return out
