"""git with a fixed identity, for tests that make local upstream repositories."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git(repo: Path, *args: str, date: int | None = None) -> str:
    """Run git in ``repo`` with a fixed identity (and author/commit date ``date``, when given,
    so commit ids and times are the same every run); its stdout, stripped."""
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@e",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@e",
        "HOME": str(repo),
        "PATH": "/usr/bin:/bin",
    }
    if date is not None:
        env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = f"@{date} +0000"
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env
    ).stdout.strip()
