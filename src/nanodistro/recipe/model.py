"""The melange recipe model (reference/formats.md §5; chainguard-dev/melange:pkg/config/config.go).

Keys keep melange's spelling as aliases (``target-architecture``, ``build_repositories``); Python
attributes use underscores. Like melange (yaml.v3 with ``KnownFields(true)``), an unknown key is an
error. Every scalar is a string as written in the file (``version: 1.10`` stays ``"1.10"``), see
:mod:`nanodistro.recipe.yamlsource`. Values are kept *unsubstituted*; ``${{…}}`` expansion is done
per architecture by :mod:`nanodistro.recipe.substitute`.

Entry points: :func:`load_recipe` and :func:`load_recipe_text`. Errors are
:class:`RecipeLoadError` (a ``RecipeError``) naming ``file:line: key.path: problem``.

This module is the public face; the code lives by concern in :mod:`.fields` (base class),
:mod:`.package` (package, dependencies, subpackages), :mod:`.environment` (build environment,
accounts), :mod:`.steps` (pipeline steps, tests), :mod:`.toplevel` (``Recipe``) and
:mod:`.loading` (loading, error translation, post-decode checks).
"""

from __future__ import annotations

from nanodistro.recipe.environment import (
    MELANGE_DEFAULT_ENV,
    Accounts,
    BaseImage,
    BuildEnvironment,
    CertificateEntry,
    Certificates,
    Contents,
    Entrypoint,
    Group,
    Layering,
    PathMutation,
    User,
    with_melange_defaults,
)
from nanodistro.recipe.loading import (
    RecipeLoadError,
    load_recipe,
    load_recipe_text,
    recipe_from_document,
    step_problems,
)
from nanodistro.recipe.package import (
    Capability,
    Checks,
    Copyright,
    Cpe,
    Dependencies,
    PackageInfo,
    PackageOptions,
    Resources,
    Scriptlets,
    Subpackage,
    Trigger,
)
from nanodistro.recipe.steps import Assertions, Needs, PipelineInput, PipelineStep, TestSpec
from nanodistro.recipe.toplevel import (
    BuildOption,
    Capabilities,
    ContentsOption,
    EnvironmentOption,
    PackageListOption,
    RangeData,
    Recipe,
    VarTransform,
)

__all__ = [
    "MELANGE_DEFAULT_ENV",
    "Accounts",
    "Assertions",
    "BaseImage",
    "BuildEnvironment",
    "BuildOption",
    "Capabilities",
    "Capability",
    "CertificateEntry",
    "Certificates",
    "Checks",
    "Contents",
    "ContentsOption",
    "Copyright",
    "Cpe",
    "Dependencies",
    "Entrypoint",
    "EnvironmentOption",
    "Group",
    "Layering",
    "Needs",
    "PackageInfo",
    "PackageListOption",
    "PackageOptions",
    "PathMutation",
    "PipelineInput",
    "PipelineStep",
    "RangeData",
    "Recipe",
    "RecipeLoadError",
    "Resources",
    "Scriptlets",
    "Subpackage",
    "TestSpec",
    "Trigger",
    "User",
    "VarTransform",
    "load_recipe",
    "load_recipe_text",
    "recipe_from_document",
    "step_problems",
    "with_melange_defaults",
]
