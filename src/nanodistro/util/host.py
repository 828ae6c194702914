"""Facts about the machine nanodistro runs on."""

from __future__ import annotations

import platform

__all__ = ["host_arch"]

# uname -m spellings (Linux, macOS, Windows) -> apk architecture names
_MACHINE_TO_APK = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


def host_arch() -> str:
    """The apk architecture name of this machine (``x86_64``, ``aarch64``, …)."""
    machine = platform.machine()
    return _MACHINE_TO_APK.get(machine.lower(), machine)
