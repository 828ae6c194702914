"""Which named pipelines (``uses:``) a recipe refers to, and which names exist.

Built-in pipeline definitions are YAML files in ``nanodistro/builder/pipelines/<name>.yaml`` (owned
by the builder), one for every pipeline melange ships (MEL:pkg/build/pipelines/**.yaml); a user
``--pipeline-dir`` is searched first, as melange ``readUses`` does (MEL:pkg/build/compile.go).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from nanodistro.recipe.model import PipelineStep, Recipe
from nanodistro.recipe.yamlsource import KeyPath

__all__ = [
    "BUILTIN_PIPELINES_DIR",
    "MELANGE_BUILTIN_PIPELINES",
    "StepUse",
    "known_pipeline_names",
    "pipeline_names_in",
    "pipeline_uses_and_inputs",
    "recipe_uses",
]

BUILTIN_PIPELINES_DIR = Path(__file__).resolve().parent.parent / "builder" / "pipelines"


def pipeline_names_in(directory: Path) -> set[str]:
    """``uses`` names defined by ``<directory>/<name>.yaml`` files (``go/build`` etc.)."""
    if not directory.is_dir():
        return set()
    return {
        path.relative_to(directory).with_suffix("").as_posix()
        for path in directory.rglob("*.yaml")
        if path.is_file()
    }


# The builder's folder holds every pipeline melange ships (tests/builder/test_builtin_pipelines.py
# checks it against melange's list), so its names are the built-in names.
MELANGE_BUILTIN_PIPELINES: frozenset[str] = frozenset(pipeline_names_in(BUILTIN_PIPELINES_DIR))


def known_pipeline_names(pipeline_dirs: Iterable[Path] = ()) -> set[str]:
    """Built-in names plus the names defined in ``pipeline_dirs``."""
    names = set(MELANGE_BUILTIN_PIPELINES)
    for directory in pipeline_dirs:
        names |= pipeline_names_in(directory)
    return names


@dataclass(frozen=True)
class StepUse:
    """A step that ``uses`` a named pipeline, with its raw (unsubstituted) ``with`` inputs."""

    path: KeyPath
    uses: str
    with_: dict[str, str]
    step: PipelineStep


def pipeline_uses_and_inputs(
    steps: Iterable[PipelineStep], prefix: KeyPath = ("pipeline",)
) -> list[StepUse]:
    """Every ``uses:`` step among ``steps`` and their nested steps, depth first."""
    found: list[StepUse] = []
    for index, step in enumerate(steps):
        path = (*prefix, index)
        if step.uses:
            found.append(StepUse(path, step.uses, dict(step.with_), step))
        found.extend(pipeline_uses_and_inputs(step.pipeline, (*path, "pipeline")))
    return found


def recipe_uses(recipe: Recipe) -> list[StepUse]:
    """Every ``uses:`` step of the recipe: main, test, subpackages and their tests."""
    return [
        StepUse(path, step.uses, dict(step.with_), step)
        for path, step in recipe.all_steps()
        if step.uses
    ]
