"""Skip a test for a missing system tool on a developer machine, fail it in CI.

``make test`` installs every tool (scripts/install-system-deps.sh, .tools/bin), so in CI (``CI`` set
in the environment) a missing tool means the environment is broken, not that the test may pass.
"""

from __future__ import annotations

import os
import shutil

import pytest

from registry_server import TOOLS_BIN


def missing_tools(*names: str) -> list[str]:
    """The names among ``names`` found neither on PATH nor in .tools/bin."""
    return [n for n in names if not (shutil.which(n) or shutil.which(n, path=str(TOOLS_BIN)))]


def require_tools(*names: str) -> None:
    """Skip (locally) or fail (under ``CI``) the calling test when any of ``names`` is missing."""
    missing = missing_tools(*names)
    if not missing:
        return
    message = f"not installed: {', '.join(missing)} (run `make sysdeps tools`)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must have every tool `make test` relies on")
    pytest.skip(message)


def tool_available(name: str) -> bool:
    """Whether an optional cross-check with ``name`` can run: False locally, a failure under CI."""
    if not missing_tools(name):
        return True
    if os.environ.get("CI"):
        pytest.fail(f"not installed: {name}; CI must have every tool `make test` relies on")
    return False
