"""Recipe arguments on the command line: one rule for ``build``, ``lint`` and ``graph``.

A file is itself. A directory means its top-level ``*.yaml`` files (Wolfi's layout: recipes side
by side, sources in ``<name>/`` subdirectories), and a workspace root (it holds
``nanodistro.toml``) means the workspace's recipes directory. So ``nanodistro build recipes/``,
``nanodistro lint .`` in a workspace and ``nanodistro graph`` see the same recipes. A directory's
other YAML (``.yam.yaml``, dot files, files without ``package:``) is skipped with one note
(recipe/folder.py); a file named explicitly is always read as a recipe.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from nanodistro.errors import RecipeError

NO_RECIPES = "no recipe files (*.yaml) in this directory"


def print_note(text: str) -> None:
    """A ``note:`` line on stderr (where lint, graph and build print their other notes)."""
    from rich.markup import escape

    from nanodistro.cli._common import err_console

    err_console.print(f"[yellow]note:[/] {escape(text)}", soft_wrap=True, highlight=False)


def recipes_dir(directory: Path) -> Path:
    """``directory``, or the recipes directory of the workspace whose root it is."""
    from nanodistro.factory.workspace import WORKSPACE_FILE, load_workspace

    if (directory / WORKSPACE_FILE).is_file():
        return load_workspace(directory / WORKSPACE_FILE).recipes_dir
    return directory


def recipe_files(
    paths: Iterable[Path],
    *,
    missing_ok: bool = False,
    note: Callable[[str], None] | None = None,
) -> list[Path]:
    """The recipe files ``paths`` name, each once, in the order given (a directory's sorted).
    ``missing_ok``: a path that does not exist is passed on (lint reports it as a finding).
    ``note`` receives one line naming the non-recipe YAML files skipped in directories."""
    from nanodistro.recipe.folder import folder_recipes, skip_note  # YAML: not for --help

    found: list[Path] = []
    seen: set[Path] = set()
    skipped: list[tuple[Path, str]] = []
    for path in paths:
        if path.is_dir():
            directory = recipes_dir(path)
            files, skipped_here = folder_recipes(directory)
            skipped += skipped_here
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
    message = skip_note(skipped)
    if message and note is not None:
        note(message)
    return found
