"""Read a recipe's YAML into plain data, keeping every scalar as the text written in the file.

melange decodes recipes with Go's yaml.v3 into string fields, so ``version: 1.10`` is the string
``"1.10"``, never the float 1.1. We therefore work on the YAML *node* tree (no type construction):
every scalar becomes its source text, ``null``/``~``/empty becomes ``None``, and the line of every
key and list item is recorded so later errors can name ``file:line: key.path``.

The node tree comes from libyaml through PyYAML's C composer when it is available (about 30x faster
than a pure-Python composer: thousands of recipes load in seconds); round-trip editing (bumps) uses
ruamel.yaml elsewhere and is not needed just to read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from nanodistro.errors import RecipeError

__all__ = ["KeyPath", "YamlDocument", "format_path", "load_data", "parse_yaml"]

KeyPath = tuple[str | int, ...]

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_NULL_TAG = "tag:yaml.org,2002:null"
# Aliases can make a small file expand exponentially ("billion laughs"); real recipes have a few
# thousand nodes.
MAX_NODES = 200_000
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass
class YamlDocument:
    """Plain data (dicts, lists, str, None) plus the 1-based line of every key path."""

    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)
    where: str = "<recipe>"
    text: str = ""

    def line_of(self, path: KeyPath) -> int | None:
        """Line of ``path`` or, if it is absent (a missing key), of its nearest existing parent."""
        while path:
            line = self.lines.get(path)
            if line is not None:
                return line
            path = path[:-1]
        return self.lines.get(())

    def get(self, path: KeyPath) -> Any:
        """The raw value at ``path`` or None."""
        node = self.data
        for part in path:
            if isinstance(part, int):
                if not isinstance(node, list) or part >= len(node):
                    return None
            elif not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    def has(self, path: KeyPath) -> bool:
        """Whether ``path`` is written in the file (even with a null value)."""
        return path in self.lines


def format_path(path: KeyPath) -> str:
    """``("pipeline", 2, "with", "uri")`` -> ``pipeline[2].with.uri``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _compose(text: str | bytes, where: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = error.problem or error.context or "invalid YAML"
        raise RecipeError(f"invalid YAML: {problem}", where=where, line=line) from None
    except yaml.YAMLError as error:
        raise RecipeError(f"invalid YAML: {error}", where=where) from None


def parse_yaml(text: str, where: str) -> YamlDocument:
    """Parse one YAML document into a :class:`YamlDocument`; errors name the file and line."""
    root = _compose(text, where)
    doc = YamlDocument(data=None, where=where, text=text)
    if root is None:
        raise RecipeError("empty recipe: expected a mapping with a 'package' key", where=where)
    doc.lines[()] = root.start_mark.line + 1
    doc.data = _Converter(doc).convert(root, ())
    return doc


def load_data(text: str | bytes, where: str) -> Any:
    """Only the plain data of one YAML document (None when it is empty), read exactly as
    :func:`parse_yaml` reads it: for readers that need many files fast and no line table
    (the graph, the monitor). ``bytes`` may carry any encoding YAML allows (UTF-8/16, BOM)."""
    root = _compose(text, where)
    if root is None:
        return None
    return _Converter(YamlDocument(data=None, where=where)).convert(root, ())


class _Converter:
    def __init__(self, doc: YamlDocument) -> None:
        self.doc = doc
        self.count = 0
        self.active: set[int] = set()

    def convert(self, node: yaml.Node, path: KeyPath) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise RecipeError(
                f"recipe expands to more than {MAX_NODES} YAML nodes (alias bomb?)",
                where=self.doc.where,
                line=node.start_mark.line + 1,
            )
        if isinstance(node, yaml.ScalarNode):
            return _convert(node, path, self)
        if id(node) in self.active:
            raise RecipeError(
                "recursive YAML alias",
                where=self.doc.where,
                line=node.start_mark.line + 1,
                field=format_path(path) or None,
            )
        self.active.add(id(node))
        try:
            return _convert(node, path, self)
        finally:
            self.active.discard(id(node))


def _convert(node: yaml.Node, path: KeyPath, conv: _Converter) -> Any:
    doc = conv.doc
    if isinstance(node, yaml.ScalarNode):
        # A plain null (`key:`, `~`, `null`): libyaml's composer marks plain style as "" where
        # the pure-Python one says None; a quoted "~" stays text.
        if node.tag == _NULL_TAG and not node.style:
            return None
        return node.value
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, child in enumerate(node.value):
            child_path = (*path, index)
            doc.lines[child_path] = child.start_mark.line + 1
            items.append(conv.convert(child, child_path))
        return items
    if isinstance(node, yaml.MappingNode):
        return _convert_mapping(node, path, conv)
    raise RecipeError("unsupported YAML node", where=doc.where, line=node.start_mark.line + 1)


def _convert_mapping(node: yaml.MappingNode, path: KeyPath, conv: _Converter) -> dict[str, Any]:
    doc = conv.doc
    result: dict[str, Any] = {}
    merged: dict[str, Any] = {}
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE_TAG:
            # `<<: *anchor` merge keys, which yaml.v3 honours; explicit keys win.
            sources = (
                value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            )
            for source in sources:
                if not isinstance(source, yaml.MappingNode):
                    raise RecipeError(
                        "'<<' merge key needs a mapping or a list of mappings",
                        where=doc.where,
                        line=value_node.start_mark.line + 1,
                        field=format_path(path) or None,
                    )
                for key, value in conv.convert(source, path).items():
                    merged.setdefault(key, value)
            continue
        if not isinstance(key_node, yaml.ScalarNode):
            raise RecipeError(
                "mapping keys must be plain strings",
                where=doc.where,
                line=key_node.start_mark.line + 1,
                field=format_path(path) or None,
            )
        key = key_node.value
        child_path = (*path, key)
        line = key_node.start_mark.line + 1
        if key in result:
            # yaml.v3 rejects duplicate keys ("mapping key already defined").
            raise RecipeError(
                f"duplicate key {key!r} (first defined at line {doc.lines.get(child_path)})",
                where=doc.where,
                line=line,
                field=format_path(child_path),
            )
        doc.lines[child_path] = line
        result[key] = conv.convert(value_node, child_path)
    for key, value in merged.items():
        result.setdefault(key, value)
    return result
