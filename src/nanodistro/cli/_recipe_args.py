"""Recipe arguments on the command line: one rule for ``build``, ``lint`` and ``graph``.

A file is itself. A directory means its top-level ``*.yaml`` files (Wolfi's layout: recipes side
by side, sources in ``<name>/`` subdirectories), and a workspace root (it holds
``nanodistro.toml``) means the workspace's recipes directory. So ``nanodistro build recipes/``,
``nanodistro lint .`` in a workspace and ``nanodistro graph`` see the same recipes.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from nanodistro.errors import RecipeError

NO_RECIPES = "no recipe files (*.yaml) in this directory"


def recipes_dir(directory: Path) -> Path:
    """``directory``, or the recipes directory of the workspace whose root it is."""
    from nanodistro.factory.workspace import WORKSPACE_FILE, load_workspace

    if (directory / WORKSPACE_FILE).is_file():
        return load_workspace(directory / WORKSPACE_FILE).recipes_dir
    return directory


def recipe_files(paths: Iterable[Path], *, missing_ok: bool = False) -> list[Path]:
    """The recipe files ``paths`` name, each once, in the order given (a directory's sorted).
    ``missing_ok``: a path that does not exist is passed on (lint reports it as a finding)."""
    found: list[Path] = []
    seen: set[Path] = set()
    for path in paths:
        if path.is_dir():
            directory = recipes_dir(path)
            files = sorted(p for p in directory.glob("*.yaml") if p.is_file())
            if not files:
                raise RecipeError(NO_RECIPES, where=str(directory))
        elif path.exists() or missing_ok:
            files = [path]
        else:
            raise RecipeError("no such recipe file or directory", where=str(path))
        for file in files:
            key = file.resolve()
            if key not in seen:  # `lint recipes recipes/zlib.yaml` lints zlib once
                seen.add(key)
                found.append(file)
    return found
