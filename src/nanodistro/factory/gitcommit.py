"""Committing the factory's own recipe edits (bumps, epoch bumps) in the workspace's git.

Each edit is one commit by ``nanodistro <nanodistro@localhost>`` naming what changed, so the
history of a catalog says which upstream release moved which recipe and why. A workspace that
is not a git work tree just gets the file edits (the caller says so once).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from nanodistro.errors import NanodistroError

AUTHOR_NAME = "nanodistro"
AUTHOR_EMAIL = "nanodistro@localhost"


class GitCommitError(NanodistroError):
    """git refused to record a factory edit."""


def _git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": AUTHOR_NAME,
        "GIT_AUTHOR_EMAIL": AUTHOR_EMAIL,
        "GIT_COMMITTER_NAME": AUTHOR_NAME,
        "GIT_COMMITTER_EMAIL": AUTHOR_EMAIL,
        "GIT_TERMINAL_PROMPT": "0",
    }
    result = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, env=env, check=False
    )
    if check and result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise GitCommitError(
            f"git {args[0]} failed: {detail[-1] if detail else result.returncode}", where=str(root)
        )
    return result


def is_git_worktree(root: Path) -> bool:
    """Whether ``root`` is inside a git work tree (and git is installed)."""
    if shutil.which("git") is None:
        return False
    result = _git(root, "rev-parse", "--is-inside-work-tree", check=False)
    return result.returncode == 0 and result.stdout.strip() == "true"


def commit_paths(root: Path, paths: Sequence[Path], message: str) -> str | None:
    """Stage ``paths`` (edited or deleted) and commit them alone; the new commit id, or None
    when nothing under them changed (a crashed cycle may have committed it already)."""
    relative = [os.path.relpath(p, root) for p in paths]
    # -A: a retired patch file was deleted
    _git(root, "add", "-A", "--", *relative)
    staged = _git(root, "diff", "--cached", "--quiet", "--", *relative, check=False)
    if staged.returncode == 0:
        return None
    _git(root, "commit", "-q", "--no-verify", "-m", message, "--", *relative)
    return _git(root, "rev-parse", "HEAD").stdout.strip()


def bump_message(
    recipe: str, old: str, new: str, retired: Sequence[str] = (), reason: str = ""
) -> str:
    """``recipe: old -> new`` plus the retired patches and why (an epoch bump's cause)."""
    lines = [f"{recipe}: {old} -> {new}", ""]
    if reason:
        lines.append(reason)
    if retired:
        lines.append("Retired patches (already in upstream): " + ", ".join(retired))
    if not reason and not retired:
        lines.append("Upstream release detected by the nanodistro factory.")
    return "\n".join(lines).rstrip() + "\n"
