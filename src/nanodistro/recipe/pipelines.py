"""Which named pipelines (``uses:``) a recipe refers to, and which names exist.

Built-in pipeline definitions are YAML files in ``nanodistro/builder/pipelines/<name>.yaml`` (owned
by the builder); a user ``--pipeline-dir`` is searched first, as melange ``readUses`` does
(MEL:pkg/build/compile.go). Until the builder's folder is populated, the names melange ships
(MEL:pkg/build/pipelines/**.yaml, reference/formats.md §6) are the fallback.
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

# Names of melange's embedded pipelines (chainguard-dev/melange pkg/build/pipelines/**.yaml).
MELANGE_BUILTIN_PIPELINES: frozenset[str] = frozenset(
    {
        "R/build",
        "autoconf/configure",
        "autoconf/make",
        "autoconf/make-install",
        "cargo/build",
        "cmake/build",
        "cmake/configure",
        "cmake/install",
        "copy",
        "cran/build",
        "cran/fetch",
        "cran/install",
        "ecosystems/maven",
        "fetch",
        "git-am",
        "git-archive",
        "git-checkout",
        "go/build",
        "go/build/v2",
        "go/bump",
        "go/covdata",
        "go/deps",
        "go/install",
        "goreleaser/build",
        "llvm/covreport",
        "maven/configure-mirror",
        "maven/pombump",
        "meson/compile",
        "meson/configure",
        "meson/install",
        "meson/test",
        "move",
        "npm/install",
        "patch",
        "pecl/install",
        "pecl/phpize",
        "pecl/phpize-8.1",
        "pecl/phpize-8.2",
        "perl/cleanup",
        "perl/cpan-install",
        "perl/make",
        "php/composer-install",
        "python/build",
        "python/build-gpep517",
        "python/build-wheel",
        "python/import",
        "python/install",
        "python/pipinstall",
        "python/test",
        "ruby/build",
        "ruby/clean",
        "ruby/install",
        "ruby/install_runtime_deps",
        "ruby/require",
        "ruby/test",
        "split/alldocs",
        "split/bin",
        "split/debug",
        "split/dev",
        "split/docs",
        "split/infodir",
        "split/lib",
        "split/locales",
        "split/manpages",
        "split/static",
        "strip",
        "xcover/profile",
        "xcover/status",
        "xcover/stop",
        "xcover/wait",
    }
)


def pipeline_names_in(directory: Path) -> set[str]:
    """``uses`` names defined by ``<directory>/<name>.yaml`` files (``go/build`` etc.)."""
    if not directory.is_dir():
        return set()
    return {
        path.relative_to(directory).with_suffix("").as_posix()
        for path in directory.rglob("*.yaml")
        if path.is_file()
    }


def known_pipeline_names(pipeline_dirs: Iterable[Path] = ()) -> set[str]:
    """Built-in names (the builder's folder, or melange's list if it is empty) plus user dirs."""
    names = pipeline_names_in(BUILTIN_PIPELINES_DIR) or set(MELANGE_BUILTIN_PIPELINES)
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
