"""Fast, dict-level reading of melange recipes for the graph and the monitor.

The full recipe model (``nanodistro.recipe.model``) validates everything; the graph over
thousands of recipes needs only names, versions and dependency lists. So it reads the same plain
data the model starts from (``recipe.yamlsource.load_data``: libyaml, every scalar kept as the
text written, as melange's Go structs read it) and substitutes with ``recipe.substitute``, but
leniently: an unknown ``${{…}}`` or a bad var-transform is left as written instead of failing,
because the graph and the monitor must still see recipes the model would reject.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from nanodistro.errors import RecipeError
from nanodistro.recipe.substitute import go_regex_replace, substitute
from nanodistro.recipe.yamlsource import load_data

_TOP_LEVEL_KEY = re.compile(rb"^(?=[A-Za-z_-])", re.MULTILINE)


def load_yaml_without(data: bytes, where: str, skip: tuple[bytes, ...]) -> Any:
    """Parse a block-style YAML mapping leaving out the top-level sections named in ``skip``.

    Pipelines and tests are most of a recipe's text and the graph needs none of it; cutting at
    unindented keys halves parsing. If the cut text does not parse (an alias into a skipped
    section, flow style), the whole document is parsed instead.
    """
    prefixes = tuple(key + b":" for key in skip)
    parts = _TOP_LEVEL_KEY.split(data)
    kept = b"".join(part for part in parts if not part.startswith(prefixes))
    try:
        return load_data(kept, where)
    except RecipeError:
        return load_data(data, where)


def as_str(value: Any) -> str:
    """A scalar's text; ``""`` for null."""
    return "" if value is None else str(value)


def is_true(value: Any) -> bool:
    """A YAML boolean read as text: ``true`` (and the YAML 1.1 ``yes``/``on`` that Go's yaml.v3
    still accepts for a bool field)."""
    return isinstance(value, str) and value.lower() in ("true", "yes", "on")


def package_mapping(document: Mapping[str, Any], *, version: str | None = None) -> dict[str, str]:
    """``package.*`` and ``vars.*`` (including ``var-transforms``) for substitution.

    ``version`` overrides ``package.version`` (what a bump will write). The strict counterpart
    on a validated recipe is ``recipe.substitute.base_substitutions``.
    """
    package = document.get("package") or {}
    if not isinstance(package, Mapping):
        package = {}
    name = as_str(package.get("name"))
    ver = version if version is not None else as_str(package.get("version"))
    epoch = as_str(package.get("epoch") or "0")
    mapping = {
        "package.name": name,
        "package.version": ver,
        "package.epoch": epoch,
        "package.full-version": f"{ver}-r{epoch}",
        "package.description": as_str(package.get("description")),
    }
    variables = document.get("vars") or {}
    if isinstance(variables, Mapping):
        for key, value in variables.items():
            mapping[f"vars.{key}"] = substitute(as_str(value), mapping, keep_unknown=True)
    transforms = document.get("var-transforms") or []
    if isinstance(transforms, list):
        for transform in transforms:
            if not isinstance(transform, Mapping) or not transform.get("to"):
                continue
            source = substitute(as_str(transform.get("from")), mapping, keep_unknown=True)
            try:
                result = go_regex_replace(
                    as_str(transform.get("match")),
                    as_str(transform.get("replace")),
                    source,
                    "<recipe>",
                    "var-transforms",
                )
            except RecipeError:  # the model reports it; here the value just stays unchanged
                result = source
            mapping[f"vars.{transform['to']}"] = result
    return mapping
