"""``setcap:`` in a recipe -> ``security.capability`` xattrs on package entries.

melange applies ``setcap`` entries as file capabilities after the build (reference §5, §7.1
step 7). The value is the kernel's ``vfs_cap_data`` revision 2 (linux/capability.h): a
little-endian ``magic_etc`` (revision | effective flag) and permitted/inheritable masks for
capability bits 0-31 and 32-63. Capabilities are written into the tar entry, not set on the
host file, so packaging needs no privileges.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from nanodistro.errors import BuildError
from nanodistro.formats.tarball import TarEntry
from nanodistro.recipe.model import Capability

VFS_CAP_REVISION_2 = 0x02000000
VFS_CAP_FLAGS_EFFECTIVE = 0x000001
XATTR_NAME = "security.capability"

# linux/capability.h
CAPABILITIES: dict[str, int] = {
    name: bit
    for bit, name in enumerate(
        [
            "chown",
            "dac_override",
            "dac_read_search",
            "fowner",
            "fsetid",
            "kill",
            "setgid",
            "setuid",
            "setpcap",
            "linux_immutable",
            "net_bind_service",
            "net_broadcast",
            "net_admin",
            "net_raw",
            "ipc_lock",
            "ipc_owner",
            "sys_module",
            "sys_rawio",
            "sys_chroot",
            "sys_ptrace",
            "sys_pacct",
            "sys_admin",
            "sys_boot",
            "sys_nice",
            "sys_resource",
            "sys_time",
            "sys_tty_config",
            "mknod",
            "lease",
            "audit_write",
            "audit_control",
            "setfcap",
            "mac_override",
            "mac_admin",
            "syslog",
            "wake_alarm",
            "block_suspend",
            "audit_read",
            "perfmon",
            "bpf",
            "checkpoint_restore",
        ]
    )
}


def capability_xattr(add: dict[str, str], *, where: str) -> bytes:
    """Encode ``{cap_net_bind_service: "+ep", "cap_a,cap_b": "=p"}`` as ``vfs_cap_data``."""
    permitted = inheritable = 0
    effective = False
    for names, flags in add.items():
        letters = set(flags.lstrip("+="))
        if not letters or not letters <= set("eip"):
            raise BuildError(
                f"capability flags {flags!r} must be made of e, i, p (e.g. '+ep')", where=where
            )
        for raw in names.split(","):
            name = raw.strip().lower().removeprefix("cap_")
            if name not in CAPABILITIES:
                raise BuildError(f"unknown capability {raw.strip()!r}", where=where)
            bit = 1 << CAPABILITIES[name]
            if "p" in letters:
                permitted |= bit
            if "i" in letters:
                inheritable |= bit
            effective = effective or "e" in letters
    magic = VFS_CAP_REVISION_2 | (VFS_CAP_FLAGS_EFFECTIVE if effective else 0)
    return struct.pack(
        "<5I",
        magic,
        permitted & 0xFFFFFFFF,
        inheritable & 0xFFFFFFFF,
        permitted >> 32,
        inheritable >> 32,
    )


def apply_setcap(entries: Sequence[TarEntry], setcap: Sequence[Capability], *, where: str) -> None:
    """Set the capability xattr on each named regular file (an absent path is an error)."""
    by_path = {entry.path: entry for entry in entries}
    for item in setcap:
        path = item.path.strip("/")
        entry = by_path.get(path)
        if entry is None or entry.type != "file":
            raise BuildError(
                f"setcap: {item.path} is not a regular file in the package", where=where
            )
        entry.xattrs[XATTR_NAME] = capability_xattr(dict(item.add), where=f"{where}: {item.path}")
