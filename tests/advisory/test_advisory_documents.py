"""Advisory documents: the 75 real Wolfi samples load, validate and write back byte-identical;
updates touch only what they add; one invalid document per rule is refused naming the rule."""

from __future__ import annotations

import difflib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fixture_paths import FIXTURES, WOLFICTL_ADVISORY_TESTDATA
from nanodistro.advisory import triage_entries
from nanodistro.advisory.decode import parse_document
from nanodistro.advisory.document import (
    add_advisory,
    append_event,
    generate_cga_id,
    new_document,
    write_document,
)
from nanodistro.advisory.model import ADVISORY_ID, Advisory, Event, Fixed, NoteData
from nanodistro.advisory.validate import check_unique_ids, document_problems
from nanodistro.errors import AdvisoryError

SAMPLES = sorted((FIXTURES / "wolfi-advisories-sample").glob("*.advisories.yaml"))
WOLFICTL = WOLFICTL_ADVISORY_TESTDATA
T = datetime(2022, 9, 15, 2, 40, 18, tzinfo=UTC)


def test_there_are_75_samples() -> None:
    assert len(SAMPLES) == 75


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_sample_loads_validates_and_round_trips(path: Path) -> None:
    data = path.read_bytes()
    doc = parse_document(data, str(path))
    assert document_problems(doc) == []
    assert write_document(doc) == data


def _only_insertions(before: bytes, after: bytes) -> list[str]:
    """Lines of ``after`` that are not in ``before`` (fails if any line was removed)."""
    added = []
    for line in difflib.ndiff(before.decode().splitlines(), after.decode().splitlines()):
        assert not line.startswith("- "), f"line removed or changed: {line!r}"
        if line.startswith("+ "):
            added.append(line[2:])
    return added


@pytest.mark.slow  # about 2 minutes over all 75 documents
@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_appending_an_event_changes_nothing_else(path: Path) -> None:
    data = path.read_bytes()
    count = len(parse_document(data, str(path)).advisories)
    for index in {0, count - 1}:
        doc = parse_document(data, str(path))  # append_event edits the tree it is given
        adv = doc.advisories[index]
        updated = append_event(doc, adv.id, Event(T, "pending-upstream-fix", NoteData("waiting")))
        out = write_document(updated)
        assert document_problems(updated) == []
        assert updated.advisories[index].events[-1] == Event(
            T, "pending-upstream-fix", NoteData("waiting")
        )
        # Every sample is already 2.0.2 except two "2" ones, whose version is re-stamped (in
        # the document's own quoting).
        before = data.replace(b'schema-version: "2"\n', b'schema-version: "2.0.2"\n')
        added = _only_insertions(before, out)
        assert [line.strip() for line in added] == [
            "- timestamp: 2022-09-15T02:40:18Z",
            "type: pending-upstream-fix",
            "data:",
            "note: waiting",
        ]
        # The blank line between advisories stays between advisories.
        assert out.count(b"\n\n") == before.count(b"\n\n")


def test_update_equals_wolfictl_expectation() -> None:
    base = WOLFICTL / "fs_putter" / "update"
    doc = parse_document((base / "foo.advisories.yaml").read_bytes(), "foo.advisories.yaml")
    doc = append_event(
        doc, "CGA-2222-2222-2222", Event(T, "pending-upstream-fix", NoteData("this is a note"))
    )
    assert write_document(doc) == (base / "foo_expected.advisories.yaml").read_bytes()


def test_create_equals_wolfictl_expectations() -> None:
    advisory = Advisory(
        "CGA-2222-2222-2222", ["CVE-2020-8927"], [Event(T, "fixed", Fixed("1.0.9-r0"))]
    )
    base = WOLFICTL / "fs_putter"
    fresh = new_document("foo", advisory, "foo.advisories.yaml")
    assert (
        write_document(fresh)
        == (base / "create-when-no-document-exists" / "foo_expected.advisories.yaml").read_bytes()
    )
    existing_dir = base / "create-when-document-exists-but-not-advisory"
    doc = parse_document((existing_dir / "foo.advisories.yaml").read_bytes(), "foo.advisories.yaml")
    assert (
        write_document(add_advisory(doc, advisory))
        == (existing_dir / "foo_expected.advisories.yaml").read_bytes()
    )


def test_generated_ids_match_the_schema_and_avoid_taken_ones() -> None:
    ids = {generate_cga_id() for _ in range(200)}
    assert all(ADVISORY_ID.match(i) for i in ids) and len(ids) == 200
    assert generate_cga_id(ids) not in ids


def test_latest_is_a_stable_sort_by_timestamp() -> None:
    # cups: fixed then FP a month later (FP wins); fixed *after* an FP written first (fixed wins).
    doc = parse_document(
        (WOLFICTL / "secdb" / "other-advisories" / "cups.advisories.yaml").read_bytes(),
        "cups.advisories.yaml",
    )
    kinds = {e.advisory_id: (e.kind, e.fixed_version) for e in triage_entries([doc])}
    assert kinds["CGA-jqff-c6c2-cc7c"] == ("false-positive-determination", None)
    assert kinds["CGA-r9wr-f3mf-3jjg"] == ("fixed", "2.5.0-r0")
    assert kinds["CGA-3r4f-h7xr-x8j9"] == ("true-positive-determination", None)
    same_time = parse_document(
        b"schema-version: 2.0.2\npackage:\n  name: x\nadvisories:\n  - id: CGA-2222-2222-2222\n"
        b"    events:\n      - timestamp: 2023-01-01T00:00:00Z\n        type: fixed\n"
        b"        data:\n          fixed-version: 1-r0\n      - timestamp: 2023-01-01T00:00:00Z\n"
        b"        type: detection\n        data:\n          type: manual\n",
        "x.advisories.yaml",
    )
    assert triage_entries([same_time])[0].kind == "detection"  # equal times: file order


VALID = """schema-version: 2.0.2

package:
  name: pkg

advisories:
  - id: CGA-2222-2222-2222
    aliases:
      - CVE-2023-1234
    events:
      - timestamp: 2023-05-04T14:34:34Z
        type: fixed
        data:
          fixed-version: 1.2.3-r0
"""

# rule -> (text replaced, replacement[, file name]); each breaks exactly one rule.
INVALID = {
    "yaml": ("package:\n  name: pkg", "package: [unclosed"),
    "strict-keys": ("    aliases:", "    severity: high\n    aliases:"),
    "structure": ("      - CVE-2023-1234", "      - {a: b}"),
    "schema-version": ("schema-version: 2.0.2", "schema-version: 2.0.3"),
    "package-name": ("  name: pkg", "  name: ''"),
    "file-name": ("", "", "other.advisories.yaml"),
    "advisories-present": (VALID[VALID.index("advisories:") :], "advisories: []\n"),
    "duplicate-id": (
        "          fixed-version: 1.2.3-r0\n",
        "          fixed-version: 1.2.3-r0\n\n  - id: CGA-2222-2222-2222\n    events:\n"
        "      - timestamp: 2023-05-04T14:34:34Z\n        type: detection\n"
        "        data:\n          type: manual\n",
    ),
    "advisory-id": ("CGA-2222-2222-2222", "CGA-aaaa-2222-2222"),
    "alias-format": ("CVE-2023-1234", "CVE-23-1"),
    "events-present": (VALID[VALID.index("    events:") :], "    events: []\n"),
    "timestamp": ("2023-05-04T14:34:34Z", "'2023-05-04T14:34:34Z'"),
    "event-type": ("type: fixed", "type: patched"),
    "event-data": ("        data:\n          fixed-version: 1.2.3-r0\n", ""),
    "detection-type": (
        "type: fixed\n        data:\n          fixed-version: 1.2.3-r0",
        "type: detection\n        data:\n          type: scanner",
    ),
    "detection-data": (
        "type: fixed\n        data:\n          fixed-version: 1.2.3-r0",
        "type: detection\n        data:\n          type: scan/v1\n          data:\n"
        "            subpackageName: pkg\n            componentID: x\n            componentName: y\n"
        "            componentVersion: '1'\n            componentType: go-module\n"
        "            componentLocation: /usr/bin/y\n            scanner: trivy",
    ),
    "fixed-version": ("1.2.3-r0", "1.2.3"),
    "fp-type": (
        "type: fixed\n        data:\n          fixed-version: 1.2.3-r0",
        "type: false-positive-determination\n        data:\n          type: not-a-bug",
    ),
    "note-required": (
        "type: fixed\n        data:\n          fixed-version: 1.2.3-r0",
        "type: fix-not-planned\n        data:\n          note: ''",
    ),
}


def _problems(text: str, name: str = "pkg.advisories.yaml") -> list[AdvisoryError]:
    try:
        doc = parse_document(text.encode(), f"/ws/advisories/{name}")
    except AdvisoryError as error:
        return [error]
    return document_problems(doc)


def test_the_valid_document_is_valid() -> None:
    assert _problems(VALID) == []


@pytest.mark.parametrize("rule", sorted(INVALID))
def test_each_rule_refuses_its_document(rule: str) -> None:
    old, new, *name = INVALID[rule]
    text = VALID.replace(old, new, 1) if old else VALID
    assert text != VALID or name
    problems = _problems(text, *name)
    assert [p.rule for p in problems] == [rule], [str(p) for p in problems]
    message = str(problems[0])
    assert f"[rule {rule}]" in message and "/ws/advisories/" in message
    assert problems[0].line is not None


def test_more_rules_with_their_lines() -> None:
    future = VALID.replace("2023-05-04T14:34:34Z", "2999-01-01T00:00:00Z")
    (problem,) = _problems(future)
    assert problem.rule == "timestamp" and problem.line == 11 and "future" in str(problem)
    cga_alias = VALID.replace("CVE-2023-1234", "CGA-3333-3333-3333")
    assert "cannot be an alias" in str(_problems(cga_alias)[0])
    old = VALID.replace("schema-version: 2.0.2\n\n", "")
    assert [p.rule for p in _problems(old)] == ["schema-version"]  # unversioned = v1: too old
    unknown = VALID.replace("  name: pkg", "  name: pkg\n  version: 1")
    (problem,) = _problems(unknown)
    assert problem.field == "package.version" and "unknown key 'version'" in str(problem)
    assert problem.line == 5
    alias_bomb = VALID.replace(
        "    aliases:\n      - CVE-2023-1234\n", "    aliases: &a [CVE-2023-1234]\n"
    )
    assert _problems(alias_bomb)[0].rule == "yaml"


def test_duplicate_ids_across_documents() -> None:
    a = parse_document(VALID.encode(), "a/pkg.advisories.yaml")
    b = parse_document(
        VALID.replace("name: pkg", "name: other").encode(), "b/other.advisories.yaml"
    )
    (problem,) = check_unique_ids([a, b])
    assert problem.rule == "duplicate-id" and "already in a/pkg.advisories.yaml" in str(problem)
