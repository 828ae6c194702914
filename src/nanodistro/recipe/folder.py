"""Which YAML files of a recipe folder are recipes.

Wolfi's repository keeps other YAML beside its recipes: ``.yam.yaml`` (the ``yam`` formatter's
config), ``.github``-style dot files, ``*.yam.yaml`` variants and the odd config without a
``package:`` section. melange is only ever handed recipes, so a folder walk (``lint DIR``,
``graph DIR``, ``build DIR``, the corpus loader) skips those instead of failing on them; a file
named explicitly on the command line is always treated as a recipe (its error then says what it
is). Files that do not parse stay recipes too: a broken recipe must be reported, not skipped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nanodistro.errors import NanodistroError
from nanodistro.recipe.yamlsource import load_data

__all__ = ["folder_recipes", "skip_note", "skip_reason", "skip_reason_of_data"]

# A block-style top-level `package:` key: every real recipe has one, so the YAML is parsed only
# for the rare file without it (flow style, quoted key, or indeed not a recipe).
_PACKAGE_KEY = re.compile(rb"^(?:package|'package'|\"package\")\s*:", re.MULTILINE)


def skip_reason_of_data(document: Any) -> str | None:
    """Why a parsed YAML document is not a recipe (None: it is one)."""
    if isinstance(document, dict) and "package" in document:
        return None
    return "no top-level package:"


def skip_reason(path: Path, data: bytes | None = None) -> str | None:
    """Why ``path`` (found in a recipe folder) is not a recipe, or None when it is one.
    ``data`` is the file's bytes if already read."""
    name = path.name
    if name.endswith(".yam.yaml"):
        return "yam formatter config"
    if name.startswith("."):
        return "dot file"
    if data is None:
        try:
            data = path.read_bytes()
        except OSError:
            return None  # the loader reports the unreadable file
    if _PACKAGE_KEY.search(data):
        return None
    try:
        document = load_data(data, str(path))
    except NanodistroError:
        return None  # invalid YAML: report it as a broken recipe
    return skip_reason_of_data(document)


def folder_recipes(directory: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The recipes among ``directory``'s top-level ``*.yaml`` files (sorted) and the files
    skipped, each with its reason."""
    recipes: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for path in sorted(p for p in directory.glob("*.yaml") if p.is_file()):
        reason = skip_reason(path)
        if reason is None:
            recipes.append(path)
        else:
            skipped.append((path, reason))
    return recipes, skipped


def skip_note(skipped: Sequence[tuple[Path | str, str]]) -> str | None:
    """One line naming every skipped file and why (None when nothing was skipped)."""
    if not skipped:
        return None
    listed = ", ".join(f"{Path(path).name} ({reason})" for path, reason in skipped)
    count = len(skipped)
    return f"skipped {count} non-recipe YAML file{'s' if count > 1 else ''}: {listed}"
