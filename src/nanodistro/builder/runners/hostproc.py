"""Starting bwrap as an unprivileged host user with per-step limits.

When nanodistro runs as root, each step's bwrap runs as the build uid (``SandboxPolicy``), so
host root is never the build user, the kernel counts the build's processes against
RLIMIT_NPROC, and files the build creates are owned by that uid. bwrap resolves its bind
sources (``realpath``) as that uid, and a workspace may sit under a directory only root can
traverse (``/root``, pytest's ``/tmp/pytest-of-root``). So the child, while still root, enters a
private mount namespace, mounts a small tmpfs on a world-traversable directory and bind-mounts
the root, workspace and cache there; only then it drops to the build uid (no supplementary
groups) and execs bwrap with the staged paths. Nothing of this is visible on the host.

Limits are rlimits set in the same child. cgroup v2 would bound the whole step rather than each
process, but only where the unified hierarchy has the pids and memory controllers delegated to
us; ``limit_mechanism`` reports what a host offers, and enforcement is rlimits (recorded).
"""

from __future__ import annotations

import ctypes
import os
import resource
from collections.abc import Callable, Sequence
from pathlib import Path

from nanodistro.builder.runners import SandboxPolicy

_CLONE_NEWNS = 0x00020000
_MS_NOSUID, _MS_NODEV, _MS_BIND, _MS_REC, _MS_PRIVATE = 2, 4, 4096, 16384, 1 << 18
# Existing directories a tmpfs may be mounted on in the private namespace; the first that every
# user can traverse and that holds none of the mounted paths wins.
_STAGING_CANDIDATES = ("/mnt", "/media", "/srv", "/opt", "/run", "/var/tmp", "/tmp")


def rlimits(policy: SandboxPolicy, *, privileged: bool) -> list[tuple[int, int]]:
    """(resource, value) pairs for a step; the process limit only with a build uid of its own."""
    limits = [
        (resource.RLIMIT_DATA, policy.memory),
        (resource.RLIMIT_FSIZE, policy.file_size),
        (resource.RLIMIT_NOFILE, policy.open_files),
        (resource.RLIMIT_CORE, 0),
    ]
    if privileged:
        limits.append((resource.RLIMIT_NPROC, policy.processes))
    return limits


def limit_mechanism() -> str:
    """``cgroup-v2-available`` when the unified hierarchy delegates pids+memory, else ``rlimit``."""
    for base in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")):
        controllers = base / "cgroup.controllers"
        try:
            offered = set(controllers.read_text().split())
        except OSError:
            continue
        if {"pids", "memory"} <= offered and os.access(base / "cgroup.subtree_control", os.W_OK):
            return "cgroup-v2-available"
    return "rlimit"


def staging_directory(sources: Sequence[Path]) -> str:
    resolved = [str(Path(s).resolve()) for s in sources]
    for candidate in _STAGING_CANDIDATES:
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if not (st.st_mode & 0o001) or os.path.islink(candidate):
            continue
        if any(r == candidate or r.startswith(candidate + "/") for r in resolved):
            continue
        return candidate
    raise OSError(f"no directory among {', '.join(_STAGING_CANDIDATES)} to stage the sandbox on")


def privileged_preexec(
    ids: tuple[int, int],
    binds: Sequence[tuple[str, str]],
    staging: str,
    limits: Sequence[tuple[int, int]],
) -> Callable[[], None]:
    """The child's setup (runs after fork, before exec, as root): private mounts, then the drop."""
    libc = ctypes.CDLL(None, use_errno=True)
    uid, gid = ids
    encoded = [(os.fsencode(source), os.fsencode(target)) for source, target in binds]
    staging_b = os.fsencode(staging)

    def check(result: int, what: str) -> None:
        if result != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"{what}: {os.strerror(error)}")

    def setup() -> None:
        check(libc.unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        check(libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None), "make / private")
        check(
            libc.mount(
                b"nanodistro-stage", staging_b, b"tmpfs", _MS_NOSUID | _MS_NODEV, b"mode=0755"
            ),
            "mount staging tmpfs",
        )
        for source, target in encoded:
            os.mkdir(target, 0o755)
            check(libc.mount(source, target, None, _MS_BIND | _MS_REC, None), "bind mount")
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        for kind, value in limits:
            resource.setrlimit(kind, (value, value))

    return setup


def unprivileged_preexec(limits: Sequence[tuple[int, int]]) -> Callable[[], None]:
    """Limits for a non-root caller: never above its own hard limits."""

    def setup() -> None:
        for kind, value in limits:
            _soft, hard = resource.getrlimit(kind)
            if hard != resource.RLIM_INFINITY:
                value = min(value, hard)
            resource.setrlimit(kind, (value, value))

    return setup


def hand_over(paths: Sequence[Path], ids: tuple[int, int]) -> None:
    """Make what the host placed in the workspace (sources, patches, melange-out) the build
    user's, so the unprivileged build can write there. Links are not followed (lchown), and only
    entries not already owned by the build uid are touched. Runs between steps, when no process
    of the build is alive (the pid namespace dies with bwrap)."""
    uid, gid = ids
    for top in paths:
        if not top.exists():
            continue
        _own(top, uid, gid)
        for directory, dirnames, filenames in os.walk(top):
            for name in [*dirnames, *filenames]:
                _own(Path(directory) / name, uid, gid)


def _own(path: Path, uid: int, gid: int) -> None:
    st = os.lstat(path)
    if st.st_uid != uid or st.st_gid != gid:
        os.lchown(path, uid, gid)
