"""Compile a recipe for one architecture into flat, fully substituted step lists.

As melange ``Compile`` (pkg/build/compile.go, reference §5/§7.1): ``uses:`` is resolved against
``--pipeline-dir`` directories first and then the built-in YAML files in ``build/pipelines/``,
recursively; ``with:`` is checked against the pipeline's ``inputs`` (an undeclared input or an
unset required one is a BuildError, as melange refuses both; defaults; hex lengths of pins);
``${{inputs.*}}`` and every recipe variable are substituted; ``if:`` is evaluated after substitution; nested steps inherit ``working-directory``
and ``environment``; ``needs.packages`` are added to the build environment.

The result is one :class:`CompiledPackage` per package (main first, then subpackages in recipe
order) plus the test pipelines, each a list of :class:`CompiledStep`.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from nanodistro.errors import BuildError, ConfigError, RecipeError
from nanodistro.recipe.conditions import evaluate_condition
from nanodistro.recipe.expand import ExpandedSubpackage, builds_for_arch, expand_subpackages
from nanodistro.recipe.model import PipelineStep, Recipe, with_melange_defaults
from nanodistro.recipe.substitute import build_substitutions, substitute
from nanodistro.recipe.yamlsource import KeyPath, format_path

BUILTIN_PIPELINES_DIR = Path(__file__).resolve().parent / "pipelines"
GUEST_HOME = "/home/build"

# Built-in pipelines that nanodistro carries out in Python, outside the sandbox (sources.py).
SOURCE_PIPELINES = frozenset({"fetch", "git-checkout", "patch"})

_HEX_PINS = {"expected-sha256": 64, "expected-sha512": 128, "expected-commit": 40}
_HEX = re.compile(r"^[0-9a-f]+$")
_INPUT_REF = re.compile(r"\$\{\{[ \t]*inputs\.([A-Za-z0-9._-]+)[ \t]*\}\}")


@dataclass
class CompiledStep:
    """One executable step: a shell script for the sandbox, or a source pipeline for Python."""

    name: str
    kind: str  # "runs" or one of SOURCE_PIPELINES
    script: str = ""
    inputs: dict[str, str] = field(default_factory=dict)
    workdir: str = GUEST_HOME
    env: dict[str, str] = field(default_factory=dict)
    package: str = ""
    origin: str = ""  # key path in the recipe, e.g. "pipeline[2]" or "pipeline[2] > autoconf/make"
    uses: str = ""


@dataclass
class CompiledPackage:
    """A package (main or subpackage) and the steps that fill its output directory."""

    name: str
    steps: list[CompiledStep]
    substitutions: dict[str, str]
    subpackage: ExpandedSubpackage | None = None


@dataclass
class CompiledTest:
    """A ``test:`` pipeline: which package it tests, the extra packages it needs, its steps."""

    package: str
    steps: list[CompiledStep]
    environment_packages: list[str]
    env: dict[str, str]


@dataclass
class CompiledBuild:
    """Everything the builder needs for one recipe and architecture."""

    recipe: Recipe
    arch: str
    packages: list[CompiledPackage]
    environment_packages: list[str]
    env: dict[str, str]
    tests: list[CompiledTest]
    warnings: list[str] = field(default_factory=list)

    @property
    def main(self) -> CompiledPackage:
        return self.packages[0]

    def all_steps(self) -> list[CompiledStep]:
        return [step for package in self.packages for step in package.steps]


# ---------------------------------------------------------------------------- pipeline files


def builtin_pipeline_names() -> list[str]:
    """Names of the built-in pipelines (``autoconf/configure``, ``fetch``, ...), sorted."""
    return sorted(
        path.relative_to(BUILTIN_PIPELINES_DIR).with_suffix("").as_posix()
        for path in BUILTIN_PIPELINES_DIR.rglob("*.yaml")
    )


def find_pipeline(name: str, pipeline_dirs: Sequence[Path] = ()) -> Path | None:
    """The file defining ``uses: name``: user dirs first, then built-ins (melange ``readUses``)."""
    if not name or name.startswith("/") or ".." in name.split("/"):
        return None
    for directory in [*pipeline_dirs, BUILTIN_PIPELINES_DIR]:
        candidate = directory / f"{name}.yaml"
        if candidate.is_file():
            return candidate
    return None


@lru_cache(maxsize=256)
def _load_pipeline_file(path: Path, mtime: float) -> PipelineStep:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read pipeline definition: {error}", where=str(path)) from None
    if not isinstance(data, dict):
        raise ConfigError("a pipeline definition must be a mapping", where=str(path))
    try:
        return PipelineStep.model_validate(data)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            f"invalid pipeline definition: {first['msg']}", where=str(path), field=loc
        ) from None


def load_pipeline(
    name: str,
    pipeline_dirs: Sequence[Path] = (),
    *,
    where: str = "<recipe>",
    line: int | None = None,
    field_name: str | None = None,
) -> PipelineStep:
    """Load the definition of ``uses: name``; a clear error names the step and searched dirs."""
    path = find_pipeline(name, pipeline_dirs)
    if path is None:
        searched = ", ".join(str(d) for d in [*pipeline_dirs, BUILTIN_PIPELINES_DIR])
        raise RecipeError(
            f"unknown pipeline 'uses: {name}' (searched {searched})",
            where=where,
            line=line,
            field=field_name,
        )
    return _load_pipeline_file(path, path.stat().st_mtime)


# ------------------------------------------------------------------------------ compilation


@dataclass
class _Scope:
    mapping: dict[str, str]
    workdir: str
    env: dict[str, str]
    package: str
    origin: str
    label: str = ""  # name of the enclosing named pipeline step, for steps without a name


class _Compiler:
    def __init__(self, recipe: Recipe, pipeline_dirs: Sequence[Path]) -> None:
        self.recipe = recipe
        self.pipeline_dirs = list(pipeline_dirs)
        self.warnings: list[str] = []

    def _loc(self, path: KeyPath | None) -> tuple[int | None, str | None]:
        if path is None:
            return None, None
        return self.recipe.line_of(path), format_path(path)

    def sub(self, text: str, mapping: dict[str, str], path: KeyPath | None) -> str:
        try:
            return substitute(text, mapping, self.recipe.where)
        except RecipeError as error:
            error.line, error.field = self._loc(path)
            raise

    def steps(
        self,
        steps: Iterable[PipelineStep],
        scope: _Scope,
        path: KeyPath | None,
        needs: list[str],
    ) -> list[CompiledStep]:
        out: list[CompiledStep] = []
        for index, step in enumerate(steps):
            step_path = (*path, index) if path is not None else None
            out.extend(self.step(step, scope, step_path, needs))
        return out

    def step(
        self,
        step: PipelineStep,
        scope: _Scope,
        path: KeyPath | None,
        needs: list[str],
    ) -> list[CompiledStep]:
        where = self.recipe.where
        if step.if_:
            line, fld = self._loc((*path, "if") if path else None)
            try:
                enabled = evaluate_condition(step.if_, scope.mapping, where, fld)
            except RecipeError as error:
                error.line = line
                raise
            if not enabled:
                return []
        workdir = scope.workdir
        if step.working_directory:
            wd = self.sub(step.working_directory, scope.mapping, path)
            workdir = posixpath.normpath(posixpath.join(GUEST_HOME, wd))
        env = {
            **scope.env,
            **{k: self.sub(v, scope.mapping, path) for k, v in step.environment.items()},
        }
        origin = format_path(path) if path is not None else scope.origin
        if step.needs:
            needs.extend(self.sub(p, scope.mapping, path) for p in step.needs.packages)

        if step.uses:
            line, fld = self._loc((*path, "uses") if path else None)
            definition = load_pipeline(
                step.uses, self.pipeline_dirs, where=where, line=line, field_name=fld
            )
            with_values = {
                key: self.sub(value, scope.mapping, (*path, "with", key) if path else None)
                for key, value in step.with_.items()
            }
            inputs = self.validate_with(
                step.uses,
                definition,
                with_values,
                scope.mapping,
                path,
                step.name or scope.label,
                origin,
            )
            inner_mapping = {k: v for k, v in scope.mapping.items() if not k.startswith("inputs.")}
            inner_mapping.update({f"inputs.{k}": v for k, v in inputs.items()})
            if definition.needs:
                needs.extend(self.sub(p, inner_mapping, path) for p in definition.needs.packages)
            if step.uses in SOURCE_PIPELINES and _is_builtin(step.uses, self.pipeline_dirs):
                return [
                    CompiledStep(
                        name=step.name or step.uses,
                        kind=step.uses,
                        inputs=inputs,
                        workdir=workdir,
                        env=env,
                        package=scope.package,
                        origin=origin,
                        uses=step.uses,
                    )
                ]
            inner = _Scope(
                inner_mapping, workdir, env, scope.package, origin, step.name or step.uses
            )
            compiled = self.steps(definition.pipeline, inner, None, needs)
            for item in compiled:
                item.uses = item.uses or step.uses
            return compiled

        compiled_steps: list[CompiledStep] = []
        if step.runs:
            script = self.sub(step.runs, scope.mapping, (*path, "runs") if path else None)
            compiled_steps.append(
                CompiledStep(
                    name=step.name or scope.label or _first_line(script) or "step",
                    kind="runs",
                    script=script,
                    workdir=workdir,
                    env=env,
                    package=scope.package,
                    origin=origin,
                )
            )
        if step.pipeline:
            inner = _Scope(
                scope.mapping, workdir, env, scope.package, origin, step.name or scope.label
            )
            compiled_steps.extend(
                self.steps(step.pipeline, inner, (*path, "pipeline") if path else None, needs)
            )
        return compiled_steps

    def validate_with(
        self,
        uses: str,
        definition: PipelineStep,
        given: dict[str, str],
        mapping: dict[str, str],
        path: KeyPath | None,
        step_name: str = "",
        origin: str = "",
    ) -> dict[str, str]:
        """melange's checks of ``with:``: every key is a declared input (``compilePipeline``:
        "undefined input %q to pipeline %q", pkg/build/compile.go), defaults fill empty values
        and a required input must end up set (``validateWith``: "required input %q for pipeline
        is missing", pkg/build/pipeline.go); hex lengths of pins. The first two are BuildErrors
        naming the recipe file, the step, the pipeline and the input."""
        values = dict(given)
        where = origin or (format_path(path) if path else "")
        step = f"step {step_name!r} ({where})" if step_name else f"step {where}"
        declared = ", ".join(sorted(definition.inputs)) or "none"
        for key in given:
            if key not in definition.inputs:
                line, fld = self._loc((*path, "with", key) if path else None)
                raise BuildError(
                    f"{step}: pipeline {uses!r} has no input {key!r} (declared inputs: "
                    f"{declared}); melange refuses undefined inputs",
                    where=self.recipe.where,
                    line=line,
                    field=fld,
                )
        for key, spec in definition.inputs.items():
            if not values.get(key):
                values[key] = self.sub(spec.default, mapping, path) if spec.default else ""
            if spec.required and not values[key]:
                line, fld = self._loc((*path, "with" if given else "uses") if path else None)
                raise BuildError(
                    f"{step}: required input {key!r} of pipeline {uses!r} is not set "
                    "(no value and no default)",
                    where=self.recipe.where,
                    line=line,
                    field=fld,
                )
        for key, length in _HEX_PINS.items():
            value = values.get(key, "")
            if value and (len(value) != length or not _HEX.match(value)):
                line, fld = self._loc((*path, "with", key) if path else None)
                raise RecipeError(
                    f"{key} must be {length} lowercase hex characters, got {value!r}",
                    where=self.recipe.where,
                    line=line,
                    field=fld,
                )
        return values


def _is_builtin(name: str, pipeline_dirs: Sequence[Path]) -> bool:
    found = find_pipeline(name, pipeline_dirs)
    return found is not None and found.parent == BUILTIN_PIPELINES_DIR


def _first_line(text: str) -> str:
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return stripped[:60]
    return ""


def _dedupe(items: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        if item:
            seen.setdefault(item, None)
    return list(seen)


def compile_recipe(
    recipe: Recipe,
    arch: str,
    *,
    pipeline_dirs: Sequence[Path] = (),
    build_options: Sequence[str] = (),
) -> CompiledBuild:
    """Compile ``recipe`` for ``arch`` (see module docstring)."""
    if not builds_for_arch(recipe, arch):
        raise RecipeError(
            f"package does not build for {arch} "
            f"(target-architecture: {', '.join(recipe.package.target_architecture)})",
            where=recipe.where,
        )
    compiler = _Compiler(recipe, pipeline_dirs)
    subpackages = expand_subpackages(recipe, arch, build_options)
    names = [s.name for s in subpackages]
    main_mapping = build_substitutions(
        recipe, arch, build_options=build_options, package_names=names
    )
    environment = with_melange_defaults(recipe.environment)
    env = {
        k: compiler.sub(v, main_mapping, ("environment", "environment", k))
        for k, v in environment.environment.items()
    }
    needs: list[str] = [
        compiler.sub(p, main_mapping, ("environment", "contents", "packages", i))
        for i, p in enumerate(environment.contents.packages)
    ]
    for option in build_options:
        spec = recipe.options[option].environment.contents.packages
        needs.extend(spec.add)
        needs = [p for p in needs if p not in set(spec.remove)]
    name = recipe.package.name
    main_scope = _Scope(main_mapping, GUEST_HOME, {}, name, "")
    packages = [
        CompiledPackage(
            name=name,
            steps=compiler.steps(recipe.pipeline, main_scope, ("pipeline",), needs),
            substitutions=main_mapping,
        )
    ]
    for sub in subpackages:
        scope = _Scope(sub.substitutions, GUEST_HOME, {}, sub.name, "")
        packages.append(
            CompiledPackage(
                name=sub.name,
                steps=compiler.steps(
                    sub.spec.pipeline, scope, ("subpackages", sub.index, "pipeline"), needs
                ),
                substitutions=sub.substitutions,
                subpackage=sub,
            )
        )

    tests: list[CompiledTest] = []
    test_specs: list[tuple[str, Any, dict[str, str], KeyPath]] = []
    if recipe.test and recipe.test.pipeline:
        test_specs.append((name, recipe.test, main_mapping, ("test",)))
    for sub in subpackages:
        if sub.spec.test and sub.spec.test.pipeline:
            test_specs.append(
                (sub.name, sub.spec.test, sub.substitutions, ("subpackages", sub.index, "test"))
            )
    for package, spec, mapping, path in test_specs:
        test_env = with_melange_defaults(spec.environment)
        test_needs = [
            compiler.sub(p, mapping, (*path, "environment", "contents", "packages", i))
            for i, p in enumerate(test_env.contents.packages)
        ]
        scope = _Scope(mapping, GUEST_HOME, {}, package, "")
        steps = compiler.steps(spec.pipeline, scope, (*path, "pipeline"), test_needs)
        tests.append(
            CompiledTest(
                package=package,
                steps=steps,
                environment_packages=_dedupe(test_needs),
                env={k: compiler.sub(v, mapping, None) for k, v in test_env.environment.items()},
            )
        )
    return CompiledBuild(
        recipe=recipe,
        arch=arch,
        packages=packages,
        environment_packages=_dedupe(needs),
        env=env,
        tests=tests,
        warnings=compiler.warnings,
    )
