"""Loading recipes: YAML text to a validated :class:`Recipe`, with errors that name file lines.

:func:`load_recipe` and :func:`load_recipe_text` parse with :mod:`nanodistro.recipe.yamlsource`,
validate with the pydantic models, translate pydantic's errors into ``file:line: key.path:
problem`` (listing the allowed keys for an unknown one) and then apply the checks melange makes
after decoding (package name, version, timeout, priorities, ranges, step structure). Every problem
is collected into one :class:`RecipeLoadError`.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from nanodistro.errors import RecipeError
from nanodistro.recipe.package import _GO_DURATION, Dependencies
from nanodistro.recipe.steps import PipelineStep
from nanodistro.recipe.toplevel import Recipe
from nanodistro.recipe.yamlsource import KeyPath, YamlDocument, format_path, parse_yaml

__all__ = [
    "RecipeLoadError",
    "load_recipe",
    "load_recipe_text",
    "recipe_from_document",
    "step_problems",
]


class RecipeLoadError(RecipeError):
    """A recipe that does not load; ``problems`` lists every ``(line, key path, message)``."""

    def __init__(
        self,
        message: str,
        *,
        where: str | None = None,
        line: int | None = None,
        field: str | None = None,
        problems: list[tuple[int | None, str, str]] | None = None,
    ) -> None:
        super().__init__(message, where=where, line=line, field=field)
        self.problems = problems or [(line, field or "", message)]


def load_recipe(path: Path) -> Recipe:
    """Load and validate a melange recipe file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeLoadError("file not found", where=str(path)) from None
    except UnicodeDecodeError as error:
        raise RecipeLoadError(f"not UTF-8 text ({error.reason})", where=str(path)) from None
    except OSError as error:
        raise RecipeLoadError(f"cannot read: {error.strerror}", where=str(path)) from None
    return load_recipe_text(text, str(path))


def load_recipe_text(text: str, where: str = "<recipe>") -> Recipe:
    """Load and validate recipe YAML text; ``where`` names it in errors."""
    try:
        doc = parse_yaml(text, where)
    except RecipeLoadError:
        raise
    except RecipeError as error:
        raise RecipeLoadError(
            error.message, where=error.where, line=error.line, field=error.field
        ) from None
    return recipe_from_document(doc)


def recipe_from_document(doc: YamlDocument) -> Recipe:
    """Validate an already parsed :class:`YamlDocument` into a :class:`Recipe`."""
    if not isinstance(doc.data, dict):
        raise RecipeLoadError(
            "a recipe must be a YAML mapping with 'package', 'pipeline', …", where=doc.where, line=1
        )
    data = doc.data
    image_keys = [k for k in ("contents", "entrypoint", "accounts") if k in data]
    if image_keys and "package" not in data:
        # an apko image config given to build/lint/test: say so, not "unknown key" per key
        message = (
            "this is an apko image config (contents:, entrypoint:), not a melange recipe; "
            "build the image with 'nanodistro image build FILE --out DIR'"
        )
        line = doc.line_of((image_keys[0],))
        raise RecipeLoadError(message, where=doc.where, line=line, problems=[(line, "", message)])
    if isinstance(data.get("update"), dict):
        data = {**data, "update": _drop_nulls(data["update"])}
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as error:
        raise _translate(error, doc) from None
    recipe._source = doc
    problems = _semantic_problems(recipe)
    if problems:
        raise _problems_error(
            [(doc.line_of(path), format_path(path), message) for path, message in problems], doc
        )
    return recipe


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _problems_error(
    problems: list[tuple[int | None, str, str]], doc: YamlDocument
) -> RecipeLoadError:
    problems.sort(key=lambda p: (p[0] or 0, p[1]))
    line, field, message = problems[0]
    if len(problems) > 1:
        message += f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})"
    return RecipeLoadError(
        message, where=doc.where, line=line, field=field or None, problems=problems
    )


def _translate(error: ValidationError, doc: YamlDocument) -> RecipeLoadError:
    problems: list[tuple[int | None, str, str]] = []
    seen: set[tuple[str, str]] = set()
    for item in error.errors(include_url=False):
        path = _clean_loc(item["loc"], doc)
        message = _message(item, path)
        key = (format_path(path), message)
        if key in seen:
            continue
        seen.add(key)
        problems.append((doc.line_of(path), format_path(path), message))
    return _problems_error(problems, doc)


def _clean_loc(loc: tuple[Any, ...], doc: YamlDocument) -> KeyPath:
    # pydantic inserts union-member tags ("str", "function-before[...]") into locations; keep only
    # the parts that are real keys/indexes in the document (plus a final missing key).
    path: list[str | int] = []
    for position, part in enumerate(loc):
        candidate = (*path, part)
        if isinstance(part, int) or candidate in doc.lines or position == len(loc) - 1:
            if isinstance(part, str) and "[" in part and candidate not in doc.lines:
                continue
            path.append(part)
    return tuple(path)


def _message(item: Any, path: KeyPath) -> str:
    kind = item["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(path[:-1])
        close = difflib.get_close_matches(str(path[-1]), allowed, n=1, cutoff=0.75) if path else []
        if close:  # a misspelling: name the key meant rather than list them all
            return f"unknown key (did you mean {close[0]!r}?)"
        hint = f" (expected one of: {', '.join(allowed)})" if allowed else ""
        return f"unknown key{hint}"
    if kind == "missing":
        return "required key is missing"
    if kind in ("string_type", "str_type"):
        return "expected a string (a scalar), got a list or mapping"
    if kind in ("list_type",):
        return "expected a list"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "expected a mapping"
    if kind in ("bool_parsing", "bool_type"):
        return "expected true or false"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return "expected an integer"
    if kind == "greater_than_equal":
        return "expected a non-negative integer"
    if kind == "literal_error":
        return f"expected {item['ctx'].get('expected', 'one of the allowed values')}"
    return str(item["msg"])


def _allowed_keys(path: KeyPath) -> list[str]:
    model: Any = Recipe
    skip_key = False  # the previous field was a dict[str, Model]: this part is a free key
    for part in path:
        if isinstance(part, int):
            continue
        if skip_key:
            skip_key = False
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
        next_model = None
        for name, info in model.model_fields.items():
            if (info.alias or name) == part:
                next_model = _model_of(info.annotation)
                skip_key = getattr(info.annotation, "__origin__", None) is dict
                break
        if next_model is None:
            return []
        model = next_model
    if isinstance(model, type) and issubclass(model, BaseModel):
        return sorted(info.alias or name for name, info in model.model_fields.items())
    return []


def _model_of(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_of(arg)
        if found is not None:
            return found
    return None


# --- checks melange makes after decoding (MEL:pkg/config/config.go validate, pipeline.go) --------

_PACKAGE_NAME = re.compile(r"^[a-zA-Z\d][a-zA-Z\d+_.-]*$")
_HEX_LENGTHS = {"expected-sha256": 64, "expected-sha512": 128, "expected-commit": 40}
_HEX = re.compile(r"^[0-9a-f]+$")


def _semantic_problems(recipe: Recipe) -> list[tuple[KeyPath, str]]:
    problems: list[tuple[KeyPath, str]] = []
    name = recipe.package.name
    if "${{" not in name and not _PACKAGE_NAME.match(name):
        problems.append((("package", "name"), f"package name must match {_PACKAGE_NAME.pattern}"))
    if not recipe.package.version:
        problems.append((("package", "version"), "package version must not be empty"))
    if recipe.package.timeout and not _GO_DURATION.match(recipe.package.timeout):
        problems.append((("package", "timeout"), "expected a Go duration such as 30m or 1h30m"))
    _check_priorities(("package", "dependencies"), recipe.package.dependencies, problems)
    data_names = {d.name for d in recipe.data}
    for index, sub in enumerate(recipe.subpackages):
        _check_priorities(("subpackages", index, "dependencies"), sub.dependencies, problems)
        if sub.range_ and sub.range_ not in data_names:
            problems.append(
                (("subpackages", index, "range"), f"undefined range {sub.range_!r} (not in data:)")
            )
    for path, step in recipe.all_steps():
        problems.extend(step_problems(path, step))
    return problems


def _check_priorities(
    path: KeyPath, deps: Dependencies, problems: list[tuple[KeyPath, str]]
) -> None:
    for key, value in (
        ("provider-priority", deps.provider_priority),
        ("replaces-priority", deps.replaces_priority),
    ):
        if value and "${{" not in value and not re.fullmatch(r"-?\d+", value):
            problems.append(((*path, key), "priority must be an integer"))


def step_problems(path: KeyPath, step: PipelineStep) -> list[tuple[KeyPath, str]]:
    """Structural problems of one step (melange ``validatePipelines`` and ``validateWith``)."""
    problems: list[tuple[KeyPath, str]] = []
    if step.with_ and not step.uses:
        problems.append(((*path, "with"), "'with' needs 'uses' (a named pipeline)"))
    if step.uses and step.runs:
        problems.append(
            ((*path, "runs"), f"a step cannot have both 'uses: {step.uses}' and 'runs'")
        )
    for key, length in _HEX_LENGTHS.items():
        value = step.with_.get(key)
        if value is None or "${{" in value:
            continue
        if len(value) != length or not _HEX.match(value):
            problems.append(((*path, "with", key), f"expected {length} lowercase hex characters"))
    return problems
