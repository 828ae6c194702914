"""Reading, writing and updating advisory documents while keeping their own formatting.

- :func:`write_document` dumps the round-trip tree: an unchanged document is byte-identical.
- :func:`append_event` adds an event at the end of an advisory's ``events`` (history is
  append-only) and stamps ``schema-version: 2.0.2`` like wolfictl does on every document it
  touches; nothing else in the file changes.
- :func:`add_advisory` inserts a new advisory in ID order (wolfictl's ``Upsert`` keeps them
  sorted), with the blank line between advisories; :func:`new_document` makes a file in the
  layout of wolfi-dev/advisories (blank lines between top-level keys).
"""

from __future__ import annotations

import secrets
from collections.abc import Collection
from datetime import UTC, datetime

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from nanodistro.advisory.decode import decode_document, parse_document
from nanodistro.advisory.model import (
    CGA_ALPHABET,
    SCAN_V1_KEYS,
    SCHEMA_VERSION,
    Advisory,
    Detection,
    Document,
    Event,
    EventData,
    FalsePositive,
    Fixed,
    NoteData,
    NvdApiDetection,
    ScanV1Detection,
    TruePositive,
)
from nanodistro.errors import AdvisoryError
from nanodistro.formats.advisory_yaml import (
    YamlSource,
    append_item,
    dump_tree,
    insert_item,
    new_map,
    note_scalar,
    parse_yaml,
    set_gap_after,
    set_key_gap,
    timestamp_scalar,
)

__all__ = [
    "add_advisory",
    "append_event",
    "generate_cga_id",
    "new_document",
    "new_event",
    "parse_document",
    "write_document",
]


def generate_cga_id(taken: Collection[str] = ()) -> str:
    """``CGA-xxxx-xxxx-xxxx``: 12 characters drawn uniformly (crypto RNG) from the schema's
    20-character alphabet, as wolfictl's GenerateCGAID; redrawn if ``taken`` holds it."""
    while True:
        chars = "".join(secrets.choice(CGA_ALPHABET) for _ in range(12))
        candidate = f"CGA-{chars[0:4]}-{chars[4:8]}-{chars[8:12]}"
        if candidate not in taken:
            return candidate


def new_event(
    kind: str,
    *,
    timestamp: datetime | None = None,
    fixed_version: str = "",
    fp_type: str = "",
    note: str = "",
) -> Event:
    """An event of ``kind`` with the data that type carries (a detection is ``manual``; a
    true-positive keeps data only for a note), stamped ``timestamp`` or now (UTC, whole
    seconds). Values are not checked here: ``validate.document_problems`` does that."""
    data: EventData | None
    if kind == "detection":
        data = Detection(type="manual")
    elif kind == "fixed":
        data = Fixed(fixed_version)
    elif kind == "false-positive-determination":
        data = FalsePositive(fp_type, note)
    elif kind == "true-positive-determination":
        data = TruePositive(note) if note else None
    else:
        data = NoteData(note)
    moment = timestamp or datetime.now(UTC).replace(microsecond=0)
    return Event(timestamp=moment, type=kind, data=data)


def write_document(doc: Document) -> bytes:
    if doc.source is None:
        raise AdvisoryError("document has no YAML source", rule="structure", where=doc.where)
    return dump_tree(doc.source)


def _event_node(event: Event) -> CommentedMap:
    if event.timestamp is None:
        raise AdvisoryError("a new event needs a timestamp", rule="timestamp")
    node = new_map(("timestamp", timestamp_scalar(event.timestamp)), ("type", event.type))
    data = _data_node(event)
    if data is not None:
        node["data"] = data
    return node


def _data_node(event: Event) -> CommentedMap | None:
    data = event.data
    if data is None:
        return None
    if isinstance(data, Detection):
        node = new_map(("type", data.type))
        if isinstance(data.data, NvdApiDetection):
            node["data"] = new_map(
                ("cpeSearched", data.data.cpe_searched), ("cpeFound", data.data.cpe_found)
            )
        elif isinstance(data.data, ScanV1Detection):
            scan = data.data
            node["data"] = new_map(
                *((key, getattr(scan, attr)) for key, attr in SCAN_V1_KEYS.items())
            )
        return node
    if isinstance(data, Fixed):
        return new_map(("fixed-version", data.fixed_version))
    if isinstance(data, FalsePositive):
        node = new_map(("type", data.type))
        if data.note:
            node["note"] = note_scalar(data.note)
        return node
    if isinstance(data, TruePositive):
        return new_map(("note", note_scalar(data.note))) if data.note else None
    if isinstance(data, NoteData):
        return new_map(("note", note_scalar(data.note)))
    return None


def _advisory_node(advisory: Advisory) -> CommentedMap:
    node = new_map(("id", advisory.id))
    if advisory.aliases:
        node["aliases"] = CommentedSeq(advisory.aliases)
    events = CommentedSeq()
    for event in advisory.events:
        events.append(_event_node(event))
    node["events"] = events
    return node


def _stamp_version(doc: Document) -> None:
    tree = doc.source.tree
    if str(tree.get("schema-version", "")) != SCHEMA_VERSION:
        tree["schema-version"] = SCHEMA_VERSION
    doc.schema_version = SCHEMA_VERSION


def _reload(doc: Document) -> Document:
    """Re-read what the tree now says, so lines and values agree with the file to be written."""
    data = dump_tree(doc.source)
    return parse_document(data, doc.where)


def append_event(doc: Document, vuln_id: str, event: Event) -> Document:
    """The document with ``event`` appended to the advisory with ID or alias ``vuln_id``."""
    adv_index = next((i for i, adv in enumerate(doc.advisories) if adv.describes(vuln_id)), None)
    if adv_index is None:
        raise AdvisoryError(
            f"no advisory for {vuln_id!r} in package {doc.package!r}",
            rule="advisory-exists",
            where=doc.where,
        )
    node = doc.source.tree["advisories"][adv_index]
    events = node.get("events")
    if not isinstance(events, CommentedSeq):
        events = CommentedSeq()
        node["events"] = events
    append_item(events, _event_node(event))
    _stamp_version(doc)
    return _reload(doc)


def add_advisory(doc: Document, advisory: Advisory) -> Document:
    """The document with a new advisory, inserted in ID order."""
    if doc.get(advisory.id) is not None:
        raise AdvisoryError(
            f"advisory {advisory.id!r} already exists", rule="duplicate-id", where=doc.where
        )
    seq = doc.source.tree["advisories"]
    index = next((i for i, adv in enumerate(doc.advisories) if adv.id > advisory.id), len(seq))
    insert_item(seq, index, _advisory_node(advisory), gap=True)
    _stamp_version(doc)
    return _reload(doc)


def new_document(package: str, advisory: Advisory, where: str) -> Document:
    """A new ``<package>.advisories.yaml`` holding one advisory, laid out as the corpus is
    (a blank line after ``schema-version`` and after the ``package`` block)."""
    tree = CommentedMap()
    tree["schema-version"] = SCHEMA_VERSION
    tree["package"] = new_map(("name", package))
    tree["advisories"] = CommentedSeq([_advisory_node(advisory)])
    set_key_gap(tree, "schema-version")
    set_gap_after(tree["package"])
    source = YamlSource(tree=tree, lines=[], where=where, final_newline=True)
    return decode_document(parse_yaml(dump_tree(source), where))
