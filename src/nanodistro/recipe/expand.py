"""Per-architecture view of a recipe: ranged subpackages expanded, names substituted, ``if:`` applied.

Mirrors melange ``ParseConfiguration`` (range expansion over ``data`` items sorted by key) and the
build's removal of subpackages whose ``if`` is false (MEL:pkg/config/config.go, pkg/build/build.go).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from nanodistro.errors import RecipeError
from nanodistro.recipe.conditions import evaluate_condition
from nanodistro.recipe.model import Dependencies, Recipe, Subpackage
from nanodistro.recipe.substitute import RangeItem, build_substitutions, substitute
from nanodistro.recipe.yamlsource import KeyPath, format_path

__all__ = [
    "ExpandedSubpackage",
    "builds_for_arch",
    "expand_subpackages",
    "main_substitutions",
    "subpackage_names",
]

_PACKAGE_NAME = re.compile(r"^[a-zA-Z\d][a-zA-Z\d+_.-]*$")


@dataclass
class ExpandedSubpackage:
    """One concrete subpackage for one architecture.

    ``spec`` is the recipe entry as written (pipelines unsubstituted); ``substitutions`` is the
    mapping to substitute its pipeline and test steps with (add ``inputs.*`` per named pipeline).
    """

    index: int
    name: str
    spec: Subpackage
    range_item: RangeItem | None
    substitutions: dict[str, str]
    description: str = ""
    url: str = ""
    dependencies: Dependencies = field(default_factory=Dependencies)


def builds_for_arch(recipe: Recipe, arch: str) -> bool:
    """Whether ``package.target-architecture`` allows ``arch`` (empty or ``all`` = every arch)."""
    targets = recipe.package.target_architecture
    return not targets or "all" in targets or arch in targets


def _range_items(recipe: Recipe, spec: Subpackage, index: int) -> list[RangeItem | None]:
    if not spec.range_:
        return [None]
    for data in recipe.data:
        if data.name == spec.range_:
            return [RangeItem(key, data.items[key]) for key in sorted(data.items)]
    raise RecipeError(
        f"subpackage uses undefined range {spec.range_!r}",
        where=recipe.where,
        line=recipe.line_of(("subpackages", index, "range")),
        field=f"subpackages[{index}].range",
    )


def subpackage_names(
    recipe: Recipe, arch: str, build_options: Iterable[str] = ()
) -> list[tuple[int, str, RangeItem | None]]:
    """``(index, expanded name, range item)`` for every subpackage entry, before ``if:``."""
    options = tuple(build_options)
    base = build_substitutions(recipe, arch, build_options=options)
    result: list[tuple[int, str, RangeItem | None]] = []
    seen: dict[str, int] = {}
    for index, spec in enumerate(recipe.subpackages):
        for item in _range_items(recipe, spec, index):
            mapping = dict(base)
            if item is not None:
                mapping["range.key"] = item.key
                mapping["range.value"] = item.value
            where_field = f"subpackages[{index}].name"
            line = recipe.line_of(("subpackages", index, "name"))
            try:
                name = substitute(spec.name, mapping, recipe.where, where_field)
            except RecipeError as error:
                error.line = line
                raise
            if not _PACKAGE_NAME.match(name):
                raise RecipeError(
                    f"subpackage name {name!r} must match {_PACKAGE_NAME.pattern}",
                    where=recipe.where,
                    line=line,
                    field=where_field,
                )
            if name in seen or name == recipe.package.name:
                raise RecipeError(
                    f"duplicate subpackage name {name!r}",
                    where=recipe.where,
                    line=line,
                    field=where_field,
                )
            seen[name] = index
            result.append((index, name, item))
    return result


def expand_subpackages(
    recipe: Recipe, arch: str, build_options: Iterable[str] = ()
) -> list[ExpandedSubpackage]:
    """The subpackages built for ``arch``: ranges expanded (keys sorted), names substituted,
    those whose ``if:`` is false dropped. Order follows the recipe."""
    options = tuple(build_options)
    names = subpackage_names(recipe, arch, options)
    all_names = [name for _, name, _ in names]
    expanded: list[ExpandedSubpackage] = []
    for index, name, item in names:
        spec = recipe.subpackages[index]
        mapping = build_substitutions(
            recipe, arch, name, item, build_options=options, package_names=all_names
        )
        prefix = f"subpackages[{index}]"
        if spec.if_ and not evaluate_condition(
            spec.if_,
            mapping,
            recipe.where,
            f"{prefix}.if",
            line=recipe.line_of(("subpackages", index, "if")),
        ):
            continue
        deps = spec.dependencies

        def sub(text: str, key: str, mapping: dict[str, str] = mapping, index: int = index) -> str:
            path: KeyPath = ("subpackages", index, *key.split("."))
            return substitute(
                text, mapping, recipe.where, format_path(path), line=recipe.line_of(path)
            )

        expanded.append(
            ExpandedSubpackage(
                index=index,
                name=name,
                spec=spec,
                range_item=item,
                substitutions=mapping,
                description=sub(spec.description, "description"),
                url=sub(spec.url, "url"),
                dependencies=Dependencies(
                    runtime=[sub(d, "dependencies.runtime") for d in deps.runtime],
                    provides=[sub(d, "dependencies.provides") for d in deps.provides],
                    replaces=[sub(d, "dependencies.replaces") for d in deps.replaces],
                    provider_priority=sub(deps.provider_priority, "dependencies.provider-priority"),
                    replaces_priority=sub(deps.replaces_priority, "dependencies.replaces-priority"),
                ),
            )
        )
    return expanded


def main_substitutions(
    recipe: Recipe, arch: str, build_options: Iterable[str] = ()
) -> dict[str, str]:
    """The mapping for the main package's pipeline (``targets.package.<sub>`` for every sub)."""
    options = tuple(build_options)
    names = [name for _, name, _ in subpackage_names(recipe, arch, options)]
    return build_substitutions(recipe, arch, build_options=options, package_names=names)
