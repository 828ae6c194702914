"""Reading what the monitor needs from recipe files, and finding recipe files."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from nanodistro.errors import RecipeError
from nanodistro.graph.scan import as_str, package_mapping
from nanodistro.monitor.models import GitCheckout, RecipeTarget
from nanodistro.recipe.substitute import substitute
from nanodistro.recipe.update import UpdateConfig
from nanodistro.recipe.yamlsource import load_data


def iter_steps(steps: Any) -> Iterator[Mapping[str, Any]]:
    """Pipeline steps depth-first, nested ``pipeline:`` lists included."""
    if not isinstance(steps, list):
        return
    for step in steps:
        if isinstance(step, Mapping):
            yield step
            yield from iter_steps(step.get("pipeline"))


def parse_update(raw: Any, where: str) -> UpdateConfig | None:
    if raw is None:
        return None
    try:
        return UpdateConfig.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        field = "update." + ".".join(str(p) for p in first["loc"])
        raise RecipeError(first["msg"], where=where, field=field) from None


def target_from_document(document: Any, path: Path | None) -> RecipeTarget:
    where = str(path) if path else "<recipe>"
    if not isinstance(document, Mapping) or not isinstance(document.get("package"), Mapping):
        raise RecipeError("expected a mapping with a 'package' section", where=where)
    package = document["package"]
    name, version = as_str(package.get("name")), as_str(package.get("version"))
    if not name or not version:
        raise RecipeError("package.name and package.version are required", where=where)
    try:
        epoch = int(as_str(package.get("epoch") or "0"))
    except ValueError:
        raise RecipeError("expected an integer", where=where, field="package.epoch") from None
    mapping = package_mapping(document)
    checkouts = []
    for step in iter_steps(document.get("pipeline")):
        if step.get("uses") != "git-checkout" or not isinstance(step.get("with"), Mapping):
            continue
        inputs = step["with"]
        repository = substitute(as_str(inputs.get("repository")), mapping, keep_unknown=True)
        if not repository:
            continue
        tag = inputs.get("tag")
        checkouts.append(
            GitCheckout(
                repository=repository,
                tag=as_str(tag) if tag is not None else None,
                expected_commit=as_str(inputs.get("expected-commit")) or None,
            )
        )
    variables = document.get("vars") if isinstance(document.get("vars"), Mapping) else {}
    transforms = document.get("var-transforms")
    return RecipeTarget(
        name=name,
        version=version,
        epoch=epoch,
        path=path,
        update=parse_update(document.get("update"), where),
        git_checkouts=checkouts,
        vars={str(k): as_str(v) for k, v in (variables or {}).items()},
        var_transforms=[dict(t) for t in transforms] if isinstance(transforms, list) else [],
    )


def read_recipe_text(path: Path) -> str:
    """The recipe file's text; a RecipeError naming the file when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RecipeError(f"cannot read recipe: {error}", where=str(path)) from None


def load_target(path: Path) -> RecipeTarget:
    """The monitor's view of the recipe at ``path``."""
    return target_from_document(load_data(read_recipe_text(path), str(path)), path)


def find_recipes(paths: Iterable[Path]) -> list[Path]:
    """Recipe files: files as given, directories' top-level ``*.yaml`` (Wolfi's layout); a
    workspace root (it holds ``nanodistro.toml``) means its recipes directory, as for build."""
    from nanodistro.factory.workspace import WORKSPACE_FILE, load_workspace
    from nanodistro.recipe.folder import folder_recipes

    found: list[Path] = []
    for path in paths:
        if path.is_dir() and (path / WORKSPACE_FILE).is_file():
            path = load_workspace(path / WORKSPACE_FILE).recipes_dir
        if path.is_dir():
            # other YAML of the folder (.yam.yaml, dot files, no package:) is not a recipe
            found.extend(folder_recipes(path)[0])
        elif path.is_file():
            found.append(path)
        else:
            raise RecipeError("no such recipe file or directory", where=str(path))
    return found
