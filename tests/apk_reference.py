"""The reference ``apk`` clients that ``make apk-tools`` builds (scripts/install-apk-tools.sh).

apk-tools 2.14.10 is ``.tools/bin/apk2``, 3.0.6 is ``.tools/bin/apk3``. A test judges our
repositories with them as a user's client would; like every real tool of the suite, a missing
client skips the test on a developer machine and fails it under ``CI``.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from registry_server import TOOLS_BIN

CLIENTS = {"apk2": "2.14.10", "apk3": "3.0.6"}


@dataclass(frozen=True)
class ApkClient:
    name: str  # apk2 or apk3
    version: str
    path: Path

    @property
    def major(self) -> int:
        return int(self.version.split(".", 1)[0])

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the client; with ``check``, a non-zero exit fails the test with its output."""
        result = subprocess.run(
            [str(self.path), *args],
            capture_output=True,
            text=True,
            check=False,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"},
            timeout=300,
        )
        if check and result.returncode != 0:
            pytest.fail(
                f"{self.name} {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout}{result.stderr}"
            )
        return result

    def __str__(self) -> str:
        return f"apk-tools {self.version}"


def apk_clients() -> list[ApkClient]:
    """Both built clients; skips (locally) or fails (under CI) when one is missing."""
    found, missing = [], []
    for name, version in CLIENTS.items():
        path = TOOLS_BIN / name
        if os.access(path, os.X_OK):
            found.append(ApkClient(name, version, path))
        else:
            missing.append(f"{path} (apk-tools {version})")
    if missing:
        message = f"not built: {', '.join(missing)} (run `make apk-tools`)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must have every tool `make test` relies on")
        pytest.skip(message)
    return found
