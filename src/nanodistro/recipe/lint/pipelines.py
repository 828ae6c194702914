"""Lint rules about pipeline steps: hermetic commands, known pipelines, their inputs and variables.

``network-in-runs``, ``bad-template-var``, ``sccache-enabled``, ``unknown-pipeline``,
``unknown-pipeline-input``, ``missing-required-input`` and ``undefined-variable``: what melange
would refuse or what would break a sandboxed, network-less build.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from nanodistro.errors import RecipeError
from nanodistro.recipe.expand import builds_for_arch, expand_subpackages
from nanodistro.recipe.lint.model import LintContext, Problem, error_text, step_uses
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


_NETWORK = [
    (re.compile(r"(^|[\s;&|(`])(curl|wget)\s"), "downloads with {1}"),
    (re.compile(r"(^|[\s;&|(`])git\s+(clone|fetch|pull|submodule\s+update)\b"), "runs git {1}"),
    (re.compile(r"(^|[\s;&|(`])go\s+(get|mod\s+download)\b"), "runs go {1}"),
    (re.compile(r"(^|[\s;&|(`])(npm|yarn|pnpm)\s+(install|ci|add)\b"), "runs {1} {2}"),
    (re.compile(r"(^|[\s;&|(`])cargo\s+fetch\b"), "runs cargo fetch"),
]
_PIP_INSTALL = re.compile(r"(^|[\s;&|(`])(pip3?|python3?(\.\d+)?\s+-m\s+pip|uv\s+pip)\s+install\b")


def _shell_commands(script: str) -> Iterator[tuple[str, str]]:
    """``(first physical line, whole command)`` per command line, joining ``\\`` continuations
    and skipping comment lines."""
    pending: list[str] = []
    for raw_line in script.splitlines():
        line = raw_line.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending.append(line[:-1].strip())
            continue
        pending.append(line)
        yield pending[0], " ".join(pending)
        pending = []
    if pending:
        yield pending[0], " ".join(pending)


def network_in_runs(ctx: LintContext) -> Iterator[Problem]:
    for path, step in _steps(ctx, tests=False):
        for first, command in _shell_commands(step.runs):
            for pattern, template in _NETWORK:
                match = pattern.search(command)
                if match:
                    what = template.format(*match.groups())
                    yield (
                        ctx.line_in_text((*path, "runs"), first),
                        f"build step {what}: builds have no network ({command!r})",
                    )
                    break
            else:
                if _PIP_INSTALL.search(command) and "--no-index" not in command:
                    yield (
                        ctx.line_in_text((*path, "runs"), first),
                        f"build step runs pip install without --no-index: builds have no network "
                        f"({command!r})",
                    )


_BAD_TEMPLATE = re.compile(r"\$\{?(pkgdir|pkgver|pkgname|srcdir)\b")


def bad_template_var(ctx: LintContext) -> Iterator[Problem]:
    for path, step in _steps(ctx):
        match = _BAD_TEMPLATE.search(step.runs)
        if match:
            yield (
                ctx.line_in_text((*path, "runs"), match.group(0)),
                f"${match.group(1)} is an abuild variable; use ${{{{targets.destdir}}}}, "
                "${{package.version}}, ${{package.name}} or the working directory",
            )


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
            close = difflib.get_close_matches(use.uses, sorted(ctx.pipeline_names), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            yield (
                (*use.path, "uses"),
                f"unknown pipeline {use.uses!r} ({hint}not built in; pass --pipeline-dir for "
                "local ones)",
            )


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
