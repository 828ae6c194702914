"""Fast, dict-level reading of melange recipes for the graph and the monitor.

The full recipe model (``nanodistro.recipe``) validates everything; the graph over thousands of
recipes needs only names, versions and dependency lists, so this reads YAML with libyaml
(``CSafeLoader``) and keeps every scalar but booleans and nulls as a string, the way melange's Go
structs read them (``version: 1.10`` stays ``"1.10"``, ``data`` keys ``3.10`` stay ``"3.10"``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

from nanodistro.errors import RecipeError

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class StringLoader(_Loader):  # type: ignore[misc,valid-type]
    """libyaml loader that resolves only bool and null; numbers stay strings."""


StringLoader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_yaml(text: str | bytes, where: str) -> Any:
    """Parse one YAML document with every number kept as a string."""
    try:
        return yaml.load(text, Loader=StringLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(error, "problem", None) or str(error)
        raise RecipeError(f"invalid YAML: {problem}", where=where, line=line) from None


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
        document = yaml.load(kept, Loader=StringLoader)
    except yaml.YAMLError:
        return load_yaml(data, where)
    return document


_SUBST = re.compile(r"\$\{\{\s*([A-Za-z0-9_.-]+)\s*\}\}")
_GO_GROUP = re.compile(r"\$(?:\{(\w+)\}|(\d+)|(\$))")


def substitute(text: str, mapping: Mapping[str, str]) -> str:
    """Replace ``${{key}}`` with ``mapping[key]``; unknown keys are left as they are."""
    if "${{" not in text:
        return text
    return _SUBST.sub(lambda m: mapping.get(m.group(1), m.group(0)), text)


def go_replacement(template: str) -> str:
    """Convert a Go ``regexp.ReplaceAllString`` template (``${1}``, ``$1``, ``$$``) to Python's."""

    def convert(match: re.Match[str]) -> str:
        if match.group(3):
            return "$"
        return rf"\g<{match.group(1) or match.group(2)}>"

    return _GO_GROUP.sub(convert, template.replace("\\", "\\\\"))


def as_str(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def package_mapping(document: Mapping[str, Any], *, version: str | None = None) -> dict[str, str]:
    """``package.*`` and ``vars.*`` (including ``var-transforms``) for substitution.

    ``version`` overrides ``package.version`` (what a bump will write).
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
            mapping[f"vars.{key}"] = substitute(as_str(value), mapping)
    transforms = document.get("var-transforms") or []
    if isinstance(transforms, list):
        for transform in transforms:
            if not isinstance(transform, Mapping) or not transform.get("to"):
                continue
            source = substitute(as_str(transform.get("from")), mapping)
            try:
                result = re.sub(
                    as_str(transform.get("match")),
                    go_replacement(as_str(transform.get("replace"))),
                    source,
                )
            except (re.error, IndexError):
                result = source
            mapping[f"vars.{transform['to']}"] = result
    return mapping
