"""The git history of a recipe: its previous text and the ``epoch-not-reset`` rule that compares it.

``git_previous_text`` finds the recipe as it was before the change being prepared or last
committed; ``epoch-not-reset`` requires a version change to restart the epoch at 0.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

from nanodistro.errors import NanodistroError
from nanodistro.recipe.lint.model import LintContext, Problem
from nanodistro.recipe.yamlsource import parse_yaml


def epoch_not_reset(ctx: LintContext) -> Iterator[Problem]:
    assert ctx.recipe is not None
    previous = ctx.previous_text()
    if previous is None:
        return
    try:
        old = parse_yaml(previous, "previous")
    except NanodistroError:
        return
    old_package = old.data.get("package") if isinstance(old.data, dict) else None
    old_version = old_package.get("version") if isinstance(old_package, dict) else None
    package = ctx.recipe.package
    if isinstance(old_version, str) and old_version != package.version and package.epoch != 0:
        yield (
            ("package", "epoch"),
            f"version changed from {old_version} to {package.version} but epoch is "
            f"{package.epoch}; a new version starts at epoch 0",
        )


def git_previous_text(path: Path) -> str | None:
    """The recipe as of the last commit that changed it relative to the working tree.

    If the working file differs from ``HEAD`` the base is ``HEAD`` (a bump being prepared),
    otherwise the parent of the last commit that changed the file (a committed bump). None
    outside git or for a new file.
    """
    directory = path.resolve().parent

    def git(*args: str) -> str | None:
        try:
            result = subprocess.run(
                ["git", "-C", str(directory), *args],
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return result.stdout if result.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    if top is None:
        return None
    relative = path.resolve().relative_to(Path(top.strip()).resolve()).as_posix()
    head = git("show", f"HEAD:{relative}")
    if head is None:
        return None
    try:
        current = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if current != head:
        return head
    last = git("log", "-1", "--format=%H", "--", relative)
    if not last or not last.strip():
        return None
    return git("show", f"{last.strip()}~1:{relative}")
