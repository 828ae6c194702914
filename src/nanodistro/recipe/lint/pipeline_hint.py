"""The message of ``unknown-pipeline``: which fix applies to a ``uses:`` name that is not known.

Every pipeline melange ships is built in (builder/pipelines/), so an unknown name is either a typo
of a built-in or a recipe-local pipeline (Wolfi keeps its own in ``os/pipelines/``, beside the
recipes, and passes ``--pipeline-dir ./pipelines`` to melange, which has no default for it:
MEL:pkg/build/build.go). The message tells the user to pass ``--pipeline-dir`` only when that
fixes it: a ``pipelines/`` folder beside the recipe defines the name (the exact directory is
named), or no directory was given at all. A near-miss of a built-in gets "did you mean" instead,
and a name missing from the directories already given says so.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["unknown_pipeline_message"]

# difflib ratio above which a name is taken for a typo of a known one ("autoconf/mak"); Wolfi's
# own names ("test/docs", "xcover/ensure") stay below it against melange's.
_TYPO_RATIO = 0.85


def _beside(recipe_path: Path | None, name: str) -> Path | None:
    """``<recipe dir>/pipelines`` when it defines ``name``."""
    if recipe_path is None or not name or name.startswith("/") or ".." in name.split("/"):
        return None
    folder = recipe_path.parent / "pipelines"
    return folder if (folder / f"{name}.yaml").is_file() else None


def _same_dir(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def unknown_pipeline_message(
    name: str,
    known: Iterable[str],
    pipeline_dirs: Sequence[Path],
    recipe_path: Path | None,
) -> str:
    """Why ``uses: name`` is unknown and the one fix that applies."""
    folder = _beside(recipe_path, name)
    if folder is not None and not any(_same_dir(folder, d) for d in pipeline_dirs):
        return (
            f"unknown pipeline {name!r}: it is defined in {folder}/ beside the recipe "
            f"(pass --pipeline-dir {folder})"
        )
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=_TYPO_RATIO)
    if close:
        return f"unknown pipeline {name!r} (did you mean {close[0]!r}?)"
    if pipeline_dirs:
        given = ", ".join(str(d) for d in pipeline_dirs)
        return (
            f"unknown pipeline {name!r}: not a melange built-in and not defined in "
            f"--pipeline-dir {given}"
        )
    return (
        f"unknown pipeline {name!r}: not a melange built-in; a local pipeline needs "
        f"--pipeline-dir DIR (the directory holding {name}.yaml)"
    )
