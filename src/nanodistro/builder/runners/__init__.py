"""Sandbox runners: where a build step's shell script executes.

One module per sandbox kind (DESIGN.md); ``bubblewrap`` is the only one today. A runner is given
an assembled root (packages installed into a directory), the toolchain root that supplies the
compilers until the catalog builds its own, and the workspace mounted at ``/home/build``.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from nanodistro.errors import ConfigError

LineCallback = Callable[[str], None]

# Environment package names a host toolchain stands in for (DESIGN.md "Build environment").
DEFAULT_TOOLCHAIN_PROVIDES: frozenset[str] = frozenset(
    {
        "build-base",
        "busybox",
        "bash",
        "coreutils",
        "gcc",
        "g++",
        "make",
        "autoconf",
        "automake",
        "libtool",
        "pkgconf",
        "pkgconf-dev",
        "pkg-config",
        "binutils",
        "ca-certificates-bundle",
        "wolfi-base",
        "wolfi-baselayout",
        "glibc",
        "glibc-dev",
        "glibc-locale-posix",
        "ld-linux",
        "libgcc",
        "libstdc++",
        "libstdc++-dev",
        "linux-headers",
        "posix-libc-utils",
        "patch",
        "git",
        "wget",
        "curl",
        "sed",
        "grep",
        "findutils",
        "diffutils",
        "tar",
        "gzip",
        "xz",
        "bzip2",
        "file",
        "perl",
        "python3",
        "python-3",
        "py3-pip",
        "py3-setuptools",
        "py3-wheel",
        "py3-build",
        "py3-installer",
        "cmake",
        "ninja",
        "ninja-build",
        "samurai",
        "scanelf",
        "nodejs",
        "npm",
        "rust",
        "cargo",
        "cargo-auditable",
    }
)

# Host paths bound read-only into every sandbox (a merged-/usr host needs only /usr; the others
# are kept so older layouts work too).
DEFAULT_TOOLCHAIN_PATHS: tuple[str, ...] = (
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/ssl/certs",
    "/etc/ca-certificates",
)

# Shared objects that come with the toolchain's C library: packages depend on them as ``so:``
# names (as melange does) and an image gets them from the libc package.
DEFAULT_LIBC_SONAMES: frozenset[str] = frozenset(
    {
        "libc.so.6",
        "libm.so.6",
        "libpthread.so.0",
        "libdl.so.2",
        "librt.so.1",
        "libresolv.so.2",
        "libutil.so.1",
        "libcrypt.so.1",
        "ld-linux-x86-64.so.2",
        "ld-linux-aarch64.so.1",
        "libgcc_s.so.1",
        "libstdc++.so.6",
        "libanl.so.1",
        "libnss_files.so.2",
        "libnss_dns.so.2",
    }
)


@dataclass(frozen=True)
class Toolchain:
    """The read-only toolchain root and which environment packages it stands in for."""

    host_root: Path = Path("/")
    paths: tuple[str, ...] = DEFAULT_TOOLCHAIN_PATHS
    provides: frozenset[str] = DEFAULT_TOOLCHAIN_PROVIDES
    libc_sonames: frozenset[str] = DEFAULT_LIBC_SONAMES

    def identity(self) -> dict[str, str]:
        """Distribution and versions of the compilers, for provenance."""
        info: dict[str, str] = {}
        os_release = self.host_root / "etc/os-release"
        if os_release.is_file():
            for line in os_release.read_text(errors="replace").splitlines():
                key, _, value = line.partition("=")
                if key in ("ID", "VERSION_ID", "PRETTY_NAME"):
                    info[f"os.{key.lower()}"] = value.strip('"')
        try:
            result = subprocess.run(
                [
                    "dpkg-query",
                    "-W",
                    "-f",
                    "${Package}=${Version}\\n",
                    "gcc",
                    "binutils",
                    "libc6",
                    "make",
                    "python3",
                ],
                capture_output=True,
                text=True,
                check=False,
                env={**os.environ, "LC_ALL": "C"},
            )
            for line in result.stdout.splitlines():
                name, _, version = line.partition("=")
                if version:
                    info[f"dpkg.{name}"] = version
        except OSError:
            pass
        return info


GiB = 1 << 30

# The host account builds run as when nanodistro itself runs as root (scripts/install-system-deps.sh
# creates it); without it, a fixed id that no login account uses.
BUILD_USER = "nanodistro-build"
DEFAULT_BUILD_ID = 64000

# Capabilities a recipe's ``capabilities.add`` may name. They exist only inside the sandbox's user
# namespace (the build runs as an unprivileged host uid), but each still widens what hostile code
# can try against the kernel, so the list holds what packaging steps plausibly need (file owners
# and modes, setcap, binding low ports in tests). CAP_SYS_ADMIN is how a recipe declares that it
# needs nested user namespaces (bwrap, unshare, podman in tests): without it ``--disable-userns``.
CAPABILITY_ALLOWLIST: frozenset[str] = frozenset(
    {
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FOWNER",
        "CAP_FSETID",
        "CAP_IPC_LOCK",
        "CAP_NET_BIND_SERVICE",
        "CAP_SETFCAP",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SYS_CHROOT",
        "CAP_SYS_ADMIN",
    }
)
NESTED_USERNS_CAPABILITY = "CAP_SYS_ADMIN"


@dataclass(frozen=True)
class SandboxPolicy:
    """Who a build step runs as and what it may consume (``[sandbox]`` in nanodistro.toml).

    Limits are per step and per process (rlimits): ``processes`` counts every task of the build
    uid on the host (threads too), so it only applies when nanodistro runs as root and the build
    has a uid of its own. ``memory`` is RLIMIT_DATA (heap and private mappings; address-space
    reservations such as Go's or the JVM's are not charged). ``tmp_size`` bounds the /tmp tmpfs.
    """

    uid: int | None = None  # None: the nanodistro-build user, else DEFAULT_BUILD_ID
    gid: int | None = None
    processes: int = 2048  # make -j and gcc drivers fit; a fork bomb stops here
    memory: int = 8 * GiB
    file_size: int = 8 * GiB
    open_files: int = 8192
    tmp_size: int = 2 * GiB

    def build_ids(self) -> tuple[int, int] | None:
        """The host uid/gid builds run as; None when nanodistro is not root (it runs builds as
        itself, already unprivileged)."""
        if os.geteuid() != 0:
            return None
        uid, gid = self.uid, self.gid
        if uid is None or gid is None:
            try:
                account = pwd.getpwnam(BUILD_USER)
                found: tuple[int, int] = (account.pw_uid, account.pw_gid)
            except KeyError:
                found = (DEFAULT_BUILD_ID, DEFAULT_BUILD_ID)
            uid = found[0] if uid is None else uid
            gid = found[1] if gid is None else gid
        if uid == 0 or gid == 0:
            raise ConfigError(
                "builds must not run as host root (uid/gid 0): the limits and the user "
                "namespace only hold for an unprivileged id",
                field="sandbox.uid",
            )
        return uid, gid


@dataclass
class StepRun:
    """One shell script to run in the sandbox."""

    name: str
    script: str
    workdir: str = "/home/build"
    env: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None


class Runner(Protocol):
    """Runs scripts in an isolated root with the workspace at /home/build."""

    def run(self, step: StepRun, *, log_path: Path, on_line: LineCallback | None = None) -> int:
        """Run one step; stream its output lines; return its exit status (124 on timeout)."""
        ...

    def close(self) -> None:
        """Remove whatever the runner assembled."""
        ...
