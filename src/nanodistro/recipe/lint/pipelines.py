"""Lint rules about pipeline steps: hermetic commands, known pipelines, their inputs and variables.

``bad-template-var``, ``sccache-enabled``, ``unknown-pipeline``,
``unknown-pipeline-input``, ``missing-required-input`` and ``undefined-variable``: what melange
would refuse or what would break a sandboxed build (``network-in-runs`` is in ``network``).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from nanodistro.errors import RecipeError
from nanodistro.recipe.expand import builds_for_arch, expand_subpackages
from nanodistro.recipe.lint.model import LintContext, Problem, error_text, step_uses
from nanodistro.recipe.lint.pipeline_hint import unknown_pipeline_message
from nanodistro.recipe.model import PipelineStep
from nanodistro.recipe.pipelines import BUILTIN_PIPELINES_DIR, recipe_uses
from nanodistro.recipe.substitute import arch_substitutions, base_substitutions, find_variables
from nanodistro.recipe.yamlsource import KeyPath


def _steps(ctx: LintContext, *, tests: bool = True) -> Iterator[tuple[KeyPath, Any]]:
    assert ctx.recipe is not None
    for path, step in ctx.recipe.all_steps():
        if not tests and "test" in path:
            continue
        yield path, step


# wolfictl bad-template-var: these literal texts in a build step (main or subpackage pipeline,
# not tests). Only the literal "$pkgname" form: "${pkgname}" is an ordinary shell variable a script
# may set itself, and melange has no abuild variables of either spelling.
_BAD_TEMPLATE_VARS = ("$pkgdir", "$pkgver", "$pkgname", "$srcdir")
_BAD_TEMPLATE_HINT = {
    "$pkgdir": "${{targets.destdir}}",
    "$pkgver": "${{package.version}}",
    "$pkgname": "${{package.name}}",
    "$srcdir": "the working directory",
}


def bad_template_var(ctx: LintContext) -> Iterator[Problem]:
    for path, step in _steps(ctx, tests=False):
        for var in _BAD_TEMPLATE_VARS:
            if var in step.runs:
                yield (
                    ctx.line_in_text((*path, "runs"), var),
                    f"{var} is an abuild variable, empty under melange; use "
                    f"{_BAD_TEMPLATE_HINT[var]}",
                )
                break


def sccache(ctx: LintContext) -> Iterator[Problem]:
    for path, _with in step_uses(ctx, "sccache/enable"):
        yield (*path, "uses"), "sccache/enable makes builds depend on a remote cache"


def undefined_variables(ctx: LintContext) -> Iterator[Problem]:
    assert ctx.recipe is not None
    recipe = ctx.recipe
    try:
        base = base_substitutions(recipe, arch_substitutions("x86_64"))
    except RecipeError as error:
        yield None, error.message
        return
    # Names valid somewhere in a build; inputs.* depend on the named pipeline.
    allowed_prefixes = ("inputs.", "targets.package.", "options.", "range.", "subpkg.")
    fixed = {
        "targets.destdir",
        "targets.contextdir",
        "targets.subpkgdir",
        "context.name",
        "host.triplet.gnu",
        "host.triplet.rust",
        "cross.triplet.gnu.glibc",
        "cross.triplet.gnu.musl",
        "cross.triplet.rust.glibc",
        "cross.triplet.rust.musl",
        "build.arch",
        "build.goarch",
    }
    option_vars = {f"vars.{k}" for option in recipe.options.values() for k in option.vars}

    def unknown(text: str) -> list[str]:
        return [
            name
            for name in find_variables(text)
            if name not in base
            and name not in fixed
            and name not in option_vars
            and not name.startswith(allowed_prefixes)
        ]

    reported: set[str] = set()
    for arch in ("x86_64", "aarch64"):
        if not builds_for_arch(recipe, arch):
            continue
        try:
            expand_subpackages(recipe, arch)
        except RecipeError as error:
            message = error_text(error)
            if "duplicate subpackage" not in message and message not in reported:
                reported.add(message)
                yield error.line, message
    for path, step in recipe.all_steps():
        fields = [
            ("runs", step.runs),
            ("if", step.if_),
            ("working-directory", step.working_directory),
        ]
        fields += [(f"with.{k}", v) for k, v in step.with_.items()]
        for key, text in fields:
            for name in unknown(text):
                yield (*path, *key.split(".", 1)), f"unknown variable ${{{{{name}}}}}"


def unknown_pipeline(ctx: LintContext) -> Iterator[Problem]:
    assert ctx.recipe is not None
    for use in recipe_uses(ctx.recipe):
        if use.uses not in ctx.pipeline_names:
            message = unknown_pipeline_message(
                use.uses, ctx.pipeline_names, ctx.pipeline_dirs, ctx.path
            )
            yield (*use.path, "uses"), message


@cache
def _definition_at(path: Path, mtime: float) -> PipelineStep | None:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return PipelineStep.model_validate(data) if isinstance(data, dict) else None
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValidationError):
        return None  # a broken definition is the builder's error to report, with its file


def _definition(ctx: LintContext, name: str) -> PipelineStep | None:
    """The definition ``uses: name`` runs: --pipeline-dir first, then the built-ins."""
    if not name or name.startswith("/") or ".." in name.split("/"):
        return None
    for directory in [*ctx.pipeline_dirs, BUILTIN_PIPELINES_DIR]:
        file = directory / f"{name}.yaml"
        if file.is_file():
            return _definition_at(file, file.stat().st_mtime)
    return None


def unknown_pipeline_input(ctx: LintContext) -> Iterator[Problem]:
    # melange compilePipeline: "undefined input %q to pipeline %q" (pkg/build/compile.go)
    assert ctx.recipe is not None
    for use in recipe_uses(ctx.recipe):
        definition = _definition(ctx, use.uses)
        if definition is None:
            continue  # unknown-pipeline reports it
        declared = ", ".join(sorted(definition.inputs)) or "none"
        for key in use.with_:
            if key not in definition.inputs:
                yield (
                    (*use.path, "with", key),
                    f"pipeline {use.uses!r} has no input {key!r} (declared: {declared})",
                )


def missing_required_input(ctx: LintContext) -> Iterator[Problem]:
    # melange validateWith: "required input %q for pipeline is missing" (pkg/build/pipeline.go)
    assert ctx.recipe is not None
    for use in recipe_uses(ctx.recipe):
        definition = _definition(ctx, use.uses)
        if definition is None:
            continue
        for key, spec in definition.inputs.items():
            if spec.required and not spec.default and not use.with_.get(key):
                where = (*use.path, "with") if use.with_ else (*use.path, "uses")
                yield where, f"pipeline {use.uses!r} needs input {key!r} (required, no default)"
