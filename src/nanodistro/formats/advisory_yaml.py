"""The YAML layer of Wolfi advisory documents (``<package>.advisories.yaml``): bytes <-> a ruamel
round-trip tree, so a document written back unchanged is byte-identical and an update touches only
the lines it adds.

The documents follow ``.yam.yaml`` of wolfi-dev/advisories (reference/security.md §1.1): indent 2,
list items indented by 2 under their key (``  - id:``), a blank line between top-level keys and
between advisories. ruamel keeps such a blank line as a comment token on the *last scalar* before
it, so appending an event to an advisory that is followed by another one has to move that token to
the new last scalar (:func:`append_item`), or the gap would end up above the new event.

Timestamps must stay unquoted ``!!timestamp`` scalars (wolfictl refuses a quoted one): ruamel loads
them as :class:`TimeStamp` and writes them back in their own form; :func:`timestamp_scalar` makes a
new one that prints as ``2024-07-05T07:32:52Z``.

Pure codec: no file access. Errors are :class:`AdvisoryError` (rule ``yaml``) naming file and line.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark, MarkedYAMLError, YAMLError
from ruamel.yaml.scalarstring import FoldedScalarString, LiteralScalarString
from ruamel.yaml.timestamp import TimeStamp
from ruamel.yaml.tokens import CommentToken

from nanodistro.errors import AdvisoryError

__all__ = [
    "YamlSource",
    "append_item",
    "dump_tree",
    "insert_item",
    "item_line",
    "key_line",
    "new_map",
    "note_scalar",
    "parse_yaml",
    "raw_scalar",
    "set_gap_after",
    "set_key_gap",
    "timestamp_scalar",
]


def _yaml() -> YAML:
    handler = YAML(typ="rt")
    handler.preserve_quotes = True
    handler.width = 1 << 30  # never re-fold a long note
    handler.indent(mapping=2, sequence=4, offset=2)
    return handler


@dataclass
class YamlSource:
    """One parsed document: the round-trip tree plus what is needed to write it back."""

    tree: Any
    lines: list[str]  # the source text split in lines (for raw scalar text)
    where: str
    final_newline: bool  # some real files end without one; writing back must keep that


def parse_yaml(data: bytes, where: str) -> YamlSource:
    """Parse one advisory document (a YAML mapping); refuse anchors/aliases and merge keys,
    which no advisory uses and which would let a small file expand (alias bombs)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise AdvisoryError(f"not UTF-8 (byte {error.start})", rule="yaml", where=where) from None
    try:
        tree = _yaml().load(text)
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = error.problem or error.context or "invalid YAML"
        raise AdvisoryError(
            f"invalid YAML: {problem}", rule="yaml", where=where, line=line
        ) from None
    except YAMLError as error:
        raise AdvisoryError(f"invalid YAML: {error}", rule="yaml", where=where) from None
    if not isinstance(tree, CommentedMap):
        raise AdvisoryError(
            "expected a mapping with schema-version, package and advisories",
            rule="structure",
            where=where,
            line=1,
        )
    _refuse_aliases(tree, where, set())
    return YamlSource(
        tree=tree, lines=text.splitlines(), where=where, final_newline=text.endswith("\n")
    )


def _refuse_aliases(node: Any, where: str, seen: set[int]) -> None:
    if not isinstance(node, (CommentedMap, CommentedSeq)):
        return
    line = node.lc.line + 1 if node.lc.line is not None else None
    if id(node) in seen or node.anchor.value is not None or getattr(node, "merge", None):
        raise AdvisoryError(
            "YAML anchors, aliases and merge keys are not allowed in advisory documents",
            rule="yaml",
            where=where,
            line=line,
        )
    seen.add(id(node))
    children = node.values() if isinstance(node, CommentedMap) else node
    for child in children:
        _refuse_aliases(child, where, seen)


def dump_tree(source: YamlSource) -> bytes:
    """The document as bytes, in its own formatting."""
    out = io.StringIO()
    _yaml().dump(source.tree, out)
    text = out.getvalue()
    if not source.final_newline:
        text = text.rstrip("\n")
    return text.encode("utf-8")


def key_line(mapping: Any, key: str) -> int | None:
    """1-based line of ``key`` in ``mapping`` (None for nodes made in memory)."""
    try:
        return int(mapping.lc.key(key)[0]) + 1
    except (AttributeError, KeyError, TypeError):
        return None


def item_line(seq: Any, index: int) -> int | None:
    try:
        return int(seq.lc.item(index)[0]) + 1
    except (AttributeError, KeyError, TypeError, IndexError):
        return None


def raw_scalar(source: YamlSource, mapping: Any, key: str) -> str:
    """The text of a scalar value as written (``schema-version: 2`` is the string ``"2"``, as Go's
    yaml.v3 decodes a scalar into a string field), without quotes or a trailing comment."""
    value = mapping[key]
    if isinstance(value, str):
        return str(value)
    try:
        line, column = mapping.lc.value(key)
        text = source.lines[line][column:]
    except (AttributeError, KeyError, TypeError, IndexError):
        return str(value)
    if " #" in text:
        text = text.split(" #", 1)[0]
    return text.strip()


def timestamp_scalar(moment: datetime) -> TimeStamp:
    """An unquoted ``!!timestamp`` printing as ``YYYY-MM-DDTHH:MM:SSZ`` (UTC, seconds).

    Made by loading that text, so it carries the zone object ruamel prints back as ``Z``."""
    text = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    stamp = _yaml().load(f"t: {text}\n")["t"]
    assert isinstance(stamp, TimeStamp)
    return stamp


def note_scalar(text: str) -> str:
    """A multi-line note as a literal block (``|-``, as the corpus writes them); others plain."""
    return LiteralScalarString(text) if "\n" in text else text


def new_map(*items: tuple[str, Any]) -> CommentedMap:
    mapping = CommentedMap()
    for key, value in items:
        mapping[key] = value
    return mapping


# --- blank lines between items ------------------------------------------------------------------


def _last_slot(node: Any) -> tuple[Any, Any] | None:
    """The (container, key/index) of the deepest last scalar of ``node``: where ruamel keeps the
    comment token holding the text (blank lines) that follows ``node``."""
    while True:
        if isinstance(node, CommentedMap) and len(node):
            key = list(node.keys())[-1]
            child = node[key]
            if isinstance(child, (CommentedMap, CommentedSeq)) and len(child):
                node = child
                continue
            return node, key
        if isinstance(node, CommentedSeq) and len(node):
            index = len(node) - 1
            child = node[index]
            if isinstance(child, (CommentedMap, CommentedSeq)) and len(child):
                node = child
                continue
            return node, index
        return None


def _comment_index(container: Any) -> int:
    return 2 if isinstance(container, CommentedMap) else 0


def _is_block(container: Any, key: Any) -> bool:
    # A block scalar (``|``, ``>``) consumes its own line end: the token after it holds only
    # the blank lines, where after a plain scalar it also holds the line end.
    return isinstance(container[key], (LiteralScalarString, FoldedScalarString))


def _pop_gap(node: Any) -> CommentToken | None:
    """Detach the blank lines that follow ``node`` (an end-of-line comment stays where it is)."""
    slot = _last_slot(node)
    if slot is None:
        return None
    container, key = slot
    entry = container.ca.items.get(key)
    position = _comment_index(container)
    if not entry or len(entry) <= position or entry[position] is None:
        return None
    token = entry[position]
    value: str = token.value
    if _is_block(container, key):
        entry[position] = None
        return CommentToken("\n" + value, CommentMark(0), None)  # as after a plain scalar
    if value.startswith("\n"):
        entry[position] = None
        return token
    head, newline, rest = value.partition("\n")
    if not rest:
        return None
    token.value = head + newline
    return CommentToken(rest, CommentMark(0), None)


def _put_gap(node: Any, token: CommentToken) -> None:
    slot = _last_slot(node)
    if slot is None:
        return
    container, key = slot
    if _is_block(container, key):
        token = CommentToken(token.value[1:], CommentMark(0), None)
    position = _comment_index(container)
    entry = container.ca.items.setdefault(key, [None, None, None, None][: position + 2])
    while len(entry) <= position:
        entry.append(None)
    existing = entry[position]
    if existing is None:
        entry[position] = token
    else:
        existing.value = existing.value.rstrip("\n") + "\n" + token.value.lstrip("\n")


def set_key_gap(mapping: CommentedMap, key: str) -> None:
    """One blank line after the scalar value of ``mapping[key]``."""
    mapping.ca.items[key] = [None, None, CommentToken("\n\n", CommentMark(0), None), None]


def set_gap_after(node: Any) -> None:
    """One blank line after ``node`` (the ``gap`` of .yam.yaml)."""
    _put_gap(node, CommentToken("\n\n", CommentMark(0), None))


def append_item(seq: CommentedSeq, item: Any) -> None:
    """Append ``item``; the blank lines that followed the old last item now follow the new one."""
    gap = _pop_gap(seq[-1]) if len(seq) else None
    seq.append(item)
    if gap is not None:
        _put_gap(item, gap)


def insert_item(seq: CommentedSeq, index: int, item: Any, *, gap: bool) -> None:
    """Insert ``item`` at ``index`` keeping one blank line between items when ``gap``."""
    if index >= len(seq):
        trailing = _pop_gap(seq[-1]) if len(seq) else None
        if gap and len(seq):
            set_gap_after(seq[-1])
        seq.append(item)
        if trailing is not None:
            _put_gap(item, trailing)
        return
    # Comments of later items are keyed by index: shift them along with the items.
    shifted = {
        (k + 1 if isinstance(k, int) and k >= index else k): v for k, v in seq.ca.items.items()
    }
    seq.ca.items.clear()
    seq.ca.items.update(shifted)
    list.insert(seq, index, item)
    if gap:
        set_gap_after(item)
