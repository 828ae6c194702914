"""YAML tree -> :class:`Document`, strictly (every level refuses unknown keys, as the Go decoder
does with ``KnownFields(true)``); what a key's *value* must satisfy is checked afterwards by
``advisory/validate.py``, so one document can report several problems at once.

Decoding stops at the first structural problem (a list where a mapping belongs, an unknown key,
a quoted timestamp), naming file, line, field and rule, like wolfictl's decoder does.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from nanodistro.advisory.model import (
    SCAN_V1_KEYS,
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
    line_of,
)
from nanodistro.errors import AdvisoryError
from nanodistro.formats.advisory_yaml import YamlSource, item_line, key_line, parse_yaml, raw_scalar

__all__ = ["decode_document", "parse_document"]

_DOC_KEYS = ("schema-version", "package", "advisories")
_PACKAGE_KEYS = ("name",)
_ADVISORY_KEYS = ("id", "aliases", "events")
_EVENT_KEYS = ("timestamp", "type", "data")
_DATA_KEYS = {
    "detection": ("type", "data"),
    "true-positive-determination": ("note",),
    "fixed": ("fixed-version",),
    "false-positive-determination": ("type", "note"),
    "analysis-not-planned": ("note",),
    "fix-not-planned": ("note",),
    "pending-upstream-fix": ("note",),
}
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def parse_document(data: bytes, where: str) -> Document:
    """Bytes of one ``*.advisories.yaml`` -> :class:`Document` (not yet validated)."""
    return decode_document(parse_yaml(data, where))


class _Decoder:
    def __init__(self, source: YamlSource) -> None:
        self.source = source
        self.lines: dict[str, int] = {"": 1}

    def fail(self, message: str, path: str, rule: str = "structure") -> AdvisoryError:
        return AdvisoryError(
            message,
            rule=rule,
            where=self.source.where,
            line=line_of(self.lines, path),
            field=path or None,
        )

    def mapping(self, node: Any, path: str, allowed: tuple[str, ...], what: str) -> CommentedMap:
        if not isinstance(node, CommentedMap):
            raise self.fail(f"expected a mapping ({what}), got {_kind(node)}", path)
        for key in node:
            line = key_line(node, key)
            if line is not None:
                self.lines[_join(path, str(key))] = line
        for key in node:
            if key not in allowed:
                raise self.fail(
                    f"unknown key {key!r} in {what}; allowed: {', '.join(allowed)}",
                    _join(path, str(key)),
                    rule="strict-keys",
                )
        return node

    def string(self, mapping: CommentedMap, key: str, path: str) -> str:
        if key not in mapping or mapping[key] is None:
            return ""
        value = mapping[key]
        if isinstance(value, (CommentedMap, CommentedSeq)):
            raise self.fail(f"expected a string, got {_kind(value)}", _join(path, key))
        return raw_scalar(self.source, mapping, key)

    def sequence(self, mapping: CommentedMap, key: str, path: str) -> CommentedSeq | None:
        if key not in mapping or mapping[key] is None:
            return None
        value = mapping[key]
        if not isinstance(value, CommentedSeq):
            raise self.fail(f"expected a list, got {_kind(value)}", _join(path, key))
        for index in range(len(value)):
            line = item_line(value, index)
            if line is not None:
                self.lines[f"{_join(path, key)}[{index}]"] = line
        return value

    def document(self) -> Document:
        root = self.mapping(self.source.tree, "", _DOC_KEYS, "the document")
        version = self.string(root, "schema-version", "")
        package = ""
        if root.get("package") is not None:
            package_map = self.mapping(root["package"], "package", _PACKAGE_KEYS, "package")
            package = self.string(package_map, "name", "package")
        advisories = []
        items: Any = self.sequence(root, "advisories", "") or []
        for index, node in enumerate(items):
            advisories.append(self.advisory(node, f"advisories[{index}]"))
        return Document(
            # Missing: schema "1" (the unversioned legacy format), refused by validation.
            schema_version=version or "1",
            package=package,
            advisories=advisories,
            where=self.source.where,
            lines=self.lines,
            source=self.source,
        )

    def advisory(self, node: Any, path: str) -> Advisory:
        mapping = self.mapping(node, path, _ADVISORY_KEYS, "an advisory")
        aliases = []
        for index, item in enumerate(self.sequence(mapping, "aliases", path) or []):
            if isinstance(item, (CommentedMap, CommentedSeq)) or item is None:
                raise self.fail(f"expected a string, got {_kind(item)}", f"{path}.aliases[{index}]")
            aliases.append(str(item))
        events = [
            self.event(item, f"{path}.events[{index}]")
            for index, item in enumerate(self.sequence(mapping, "events", path) or [])
        ]
        return Advisory(id=self.string(mapping, "id", path), aliases=aliases, events=events)

    def event(self, node: Any, path: str) -> Event:
        mapping = self.mapping(node, path, _EVENT_KEYS, "an event")
        kind = self.string(mapping, "type", path)
        stamp = self.timestamp(mapping, path)
        data: EventData | None = None
        if kind in _DATA_KEYS and mapping.get("data") is not None:
            data = self.event_data(kind, mapping["data"], f"{path}.data")
        # An unknown type decodes without its data and fails validation (rule event-type).
        return Event(timestamp=stamp, type=kind, data=data)

    def timestamp(self, mapping: CommentedMap, path: str) -> datetime | None:
        if "timestamp" not in mapping or mapping["timestamp"] is None:
            return None
        value = mapping["timestamp"]
        field_path = _join(path, "timestamp")
        if not isinstance(value, datetime):
            tag = "!!str" if isinstance(value, str) else _kind(value)
            if isinstance(value, date):
                tag = "a date without a time"
            raise self.fail(
                f"expected an unquoted RFC 3339 timestamp (a YAML !!timestamp), got {tag}",
                field_path,
                rule="timestamp",
            )
        text = raw_scalar(self.source, mapping, "timestamp")
        if not _RFC3339.match(text):
            raise self.fail(
                f"timestamp {text!r} is not RFC 3339 (like 2024-07-05T07:32:52Z)",
                field_path,
                rule="timestamp",
            )
        parsed = datetime.fromisoformat(text)
        return parsed.astimezone(UTC)

    def event_data(self, kind: str, node: Any, path: str) -> EventData:
        mapping = self.mapping(node, path, _DATA_KEYS[kind], f"{kind} data")
        if kind == "detection":
            return self.detection(mapping, path)
        if kind == "true-positive-determination":
            return TruePositive(note=self.string(mapping, "note", path))
        if kind == "fixed":
            return Fixed(fixed_version=self.string(mapping, "fixed-version", path))
        if kind == "false-positive-determination":
            return FalsePositive(
                type=self.string(mapping, "type", path), note=self.string(mapping, "note", path)
            )
        return NoteData(note=self.string(mapping, "note", path))

    def detection(self, mapping: CommentedMap, path: str) -> Detection:
        kind = self.string(mapping, "type", path)
        has_data = mapping.get("data") is not None
        data_path = f"{path}.data"
        if kind not in ("nvdapi", "scan/v1") or not has_data:
            return Detection(type=kind, has_data=has_data)
        node = mapping["data"]
        # The Go code decodes detection data without KnownFields: extra keys are tolerated
        # there (and only there), so we accept what wolfictl accepts.
        if not isinstance(node, CommentedMap):
            raise self.fail(f"expected a mapping ({kind} data), got {_kind(node)}", data_path)
        for key in node:
            line = key_line(node, key)
            if line is not None:
                self.lines[_join(data_path, str(key))] = line
        if kind == "nvdapi":
            return Detection(
                type=kind,
                data=NvdApiDetection(
                    cpe_searched=self.string(node, "cpeSearched", data_path),
                    cpe_found=self.string(node, "cpeFound", data_path),
                ),
                has_data=True,
            )
        values = {attr: self.string(node, key, data_path) for key, attr in SCAN_V1_KEYS.items()}
        return Detection(type=kind, data=ScanV1Detection(**values), has_data=True)


def decode_document(source: YamlSource) -> Document:
    return _Decoder(source).document()


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: Any) -> str:
    if isinstance(value, CommentedMap):
        return "a mapping"
    if isinstance(value, CommentedSeq):
        return "a list"
    if value is None:
        return "nothing"
    return f"{type(value).__name__} {value!r}"
