"""The diff-based rules of ``nanodistro advisory validate`` (reference/security.md §1.10 item 4):
a workspace in a temporary git repository, documents committed, then edited, removed or appended
to, and the CLI run against HEAD or ``--base``."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cli_runner import run_cli
from nanodistro.advisory.decode import parse_document
from nanodistro.advisory.document import add_advisory, append_event, new_document, write_document
from nanodistro.advisory.history import compare_history
from nanodistro.advisory.model import Advisory, Detection, Document, Event, Fixed, NoteData
from nanodistro.formats.apkindex import write_index
from nanodistro.formats.pkginfo import PackageInfo
from nanodistro.trust.cosignkey import generate_key_pair
from signing_keys import make_key

RECIPE = """package:
  name: foo
  version: 1.2.4
  epoch: 0
  description: foo
pipeline: []
"""
CVE_A = "CGA-2222-3333-4444"
CVE_B = "CGA-5555-6666-7777"
NOW = datetime.now(UTC).replace(microsecond=0)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _event(moment: datetime, kind: str = "detection", extra: str = "") -> str:
    """One event as YAML at indent 0 (``_document`` indents it)."""
    if kind == "detection":
        data = "  data:\n    type: manual\n"
    elif kind == "pending-upstream-fix":
        data = f"  data:\n    note: waiting{extra}\n"
    else:
        data = f"  data:\n    fixed-version: {extra}\n"
    return f"- timestamp: {_stamp(moment)}\n  type: {kind}\n{data}"


def _document(package: str, advisories: dict[str, list[str]]) -> str:
    text = f"schema-version: 2.0.2\n\npackage:\n  name: {package}\n\nadvisories:\n"
    for number, (cga, events) in enumerate(advisories.items()):
        text += f"  - id: {cga}\n    aliases:\n      - CVE-2024-{1000 + number}\n    events:\n"
        text += "".join("      " + line + "\n" for e in events for line in e.splitlines())
    return text


def _git(ws: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=ws,
        check=True,
        capture_output=True,
    )


def _write(ws: Path, package: str, text: str) -> Path:
    path = ws / "advisories" / f"{package}.advisories.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def _commit(ws: Path, message: str = "advisories") -> None:
    _git(ws, "add", "-A")
    _git(ws, "commit", "-q", "-m", message)


def _workspace(tmp_path: Path, *, index: list[tuple[str, str]] | None = None) -> Path:
    """A workspace (recipe ``foo``) in a git repository with one commit; ``index``: the
    (name, version) packages of an unsigned repository index."""
    ws = tmp_path / "ws"
    (ws / "recipes").mkdir(parents=True)
    (ws / "recipes" / "foo.yaml").write_text(RECIPE)
    (ws / "nanodistro.toml").write_text('[workspace]\nname = "demo"\narchs = ["x86_64"]\n')
    (ws / ".gitignore").write_text("out/\n")
    if index is not None:
        _write_index(ws, index, key=None)
    _git(ws, "init", "-q", "-b", "main")
    _commit(ws, "workspace")
    return ws


def _write_index(ws: Path, packages: list[tuple[str, str]], key: object) -> None:
    arch = ws / "out" / "packages" / "x86_64"
    arch.mkdir(parents=True, exist_ok=True)
    infos = [PackageInfo(name=n, version=v, arch="x86_64", origin=n) for n, v in packages]
    (arch / "APKINDEX.tar.gz").write_bytes(write_index(infos, key=key))  # type: ignore[arg-type]


def _validate(ws: Path, *args: str) -> tuple[int, list[str], str]:
    result = run_cli(ws, "advisory", "validate", *args)
    return result.returncode, result.stdout.strip().splitlines(), result.stderr


def test_removed_document_and_advisory_are_refused(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, index=[("bar", "1.0-r0")])
    old = NOW - timedelta(days=400)  # committed history may be old
    _write(ws, "foo", _document("foo", {CVE_A: [_event(old)], CVE_B: [_event(old)]}))
    _write(ws, "bar", _document("bar", {CVE_A.replace("2", "8"): [_event(old)]}))
    _commit(ws)
    code, lines, _ = _validate(ws)
    assert code == 0, lines
    assert "compared with HEAD" in lines[-1]

    (ws / "advisories" / "bar.advisories.yaml").unlink()
    _write(ws, "foo", _document("foo", {CVE_A: [_event(old)]}))
    code, lines, _ = _validate(ws)
    assert code == 1
    assert any(
        "bar.advisories.yaml" in line
        and "document was removed" in line
        and "[rule document-removed]" in line
        for line in lines
    ), lines
    assert any(CVE_B in line and "[rule advisory-removed]" in line for line in lines), lines
    # --package narrows the comparison too; --skip-diff turns it off
    code, lines, _ = _validate(ws, "--package", "foo")
    assert code == 1 and not any("document-removed" in line for line in lines), lines
    code, lines, stderr = _validate(ws, "--skip-diff")
    assert code == 0, lines
    assert "diff rules skipped: --skip-diff" in stderr


def test_events_are_append_only_and_new_ones_recent(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    first = NOW - timedelta(days=200)
    second = NOW - timedelta(days=100)
    committed = [_event(first), _event(second, "pending-upstream-fix")]
    _write(ws, "foo", _document("foo", {CVE_A: committed}))
    _commit(ws)

    # modified: a note edited in place
    edited = [_event(first), _event(second, "pending-upstream-fix", " (edited)")]
    _write(ws, "foo", _document("foo", {CVE_A: edited}))
    code, lines, _ = _validate(ws)
    assert code == 1
    assert any(
        "one or more events were modified or removed" in line
        and "[rule events-append-only]" in line
        for line in lines
    ), lines

    # removed: the last event dropped
    _write(ws, "foo", _document("foo", {CVE_A: committed[:1]}))
    code, lines, _ = _validate(ws)
    assert code == 1
    assert any(
        "one or more events were removed" in line and "[rule events-append-only]" in line
        for line in lines
    ), lines

    # appended, 40 days old: refused; 29 days old: accepted
    stale = [*committed, _event(NOW - timedelta(days=40), "fixed", "1.2.4-r0")]
    _write(ws, "foo", _document("foo", {CVE_A: stale}))
    code, lines, _ = _validate(ws)
    assert code == 1
    assert any(
        "event 3 (just added)" in line and "30 days" in line and "[rule event-age]" in line
        for line in lines
    ), lines
    fresh = [*committed, _event(NOW - timedelta(days=29), "fixed", "1.2.4-r0")]
    _write(ws, "foo", _document("foo", {CVE_A: fresh}))
    code, lines, _ = _validate(ws)
    assert code == 0, lines


def test_explicit_base_and_bad_base(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    events = [
        _event(NOW - timedelta(days=3)),
        _event(NOW - timedelta(days=2), "pending-upstream-fix"),
    ]
    _write(ws, "foo", _document("foo", {CVE_A: events}))
    _commit(ws, "two events")
    _write(ws, "foo", _document("foo", {CVE_A: events[:1]}))
    _commit(ws, "history rewritten")
    code, lines, _ = _validate(ws)  # HEAD already has the rewrite: nothing to see
    assert code == 0, lines
    code, lines, _ = _validate(ws, "--base", "HEAD~1")
    assert code == 1 and any("[rule events-append-only]" in line for line in lines), lines
    code, lines, stderr = _validate(ws, "--base", "no-such-branch")
    assert code == 1
    assert "--base" in stderr + "\n".join(lines) and "no-such-branch" in stderr + "\n".join(lines)


def test_package_existence_new_versus_modified_documents(tmp_path: Path) -> None:
    """A new document's package needs a recipe; a modified one may be only in the index."""
    ws = _workspace(tmp_path, index=[("foo", "1.2.4-r0"), ("legacy", "0.9-r3")])
    old = NOW - timedelta(days=300)
    _write(ws, "legacy", _document("legacy", {CVE_A: [_event(old)]}))
    _commit(ws)  # legacy's recipe is gone, its package is still in the index
    _write(
        ws, "legacy", _document("legacy", {CVE_A: [_event(old), _event(NOW, "fixed", "0.9-r3")]})
    )
    _write(ws, "newbie", _document("newbie", {CVE_B: [_event(NOW)]}))
    code, lines, _ = _validate(ws)
    assert code == 1
    assert len(lines) == 1, lines
    assert "'newbie'" in lines[0] and "new document" in lines[0], lines
    assert "[rule package-exists]" in lines[0]
    # the brand-new document, on a package in the index but without a recipe: still refused
    _write_index(ws, [("foo", "1.2.4-r0"), ("legacy", "0.9-r3"), ("newbie", "1-r0")], key=None)
    code, lines, _ = _validate(ws)
    assert code == 1 and "'newbie'" in lines[0] and "[rule package-exists]" in lines[0], lines


def test_only_new_fixed_events_must_be_in_the_index(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, index=[("foo", "1.2.4-r0")])
    old = NOW - timedelta(days=300)
    # an old fix whose version the index no longer holds (pruned): valid history
    history = [_event(old), _event(old + timedelta(days=1), "fixed", "1.0.0-r0")]
    _write(ws, "foo", _document("foo", {CVE_A: history, CVE_B: [_event(old)]}))
    _commit(ws)
    code, lines, _ = _validate(ws)
    assert code == 0, lines
    code, lines, _ = _validate(ws, "--skip-diff")  # without a base every fix is checked
    assert code == 1 and "'1.0.0-r0'" in lines[0] and "[rule fixed-version-exists]" in lines[0]

    _write(
        ws,
        "foo",
        _document("foo", {CVE_A: history, CVE_B: [_event(old), _event(NOW, "fixed", "1.2.5-r0")]}),
    )
    code, lines, _ = _validate(ws)
    assert code == 1
    assert (
        len(lines) == 1 and "'1.2.5-r0'" in lines[0] and "[rule fixed-version-exists]" in lines[0]
    )
    _write(
        ws,
        "foo",
        _document("foo", {CVE_A: history, CVE_B: [_event(old), _event(NOW, "fixed", "1.2.4-r0")]}),
    )
    code, lines, _ = _validate(ws)
    assert code == 0, lines


def test_the_factorys_own_edits_pass(tmp_path: Path) -> None:
    """The factory appends detection / pending-upstream-fix / fixed events stamped now through
    advisory/document.py (factory/vulnerabilities.py ``_add_event``); validated against HEAD.
    The repository index is signed and keys/ also holds the workspace's cosign.pub (ECDSA)."""
    ws = _workspace(tmp_path)
    key, _ = make_key(ws / "keys", "demo")
    generate_key_pair(ws / "keys", password=b"")
    _write_index(ws, [("foo", "1.2.3-r0"), ("foo", "1.2.4-r0")], key=key)
    old = NOW - timedelta(days=90)
    path = _write(ws, "foo", _document("foo", {CVE_A: [_event(old)]}))
    _commit(ws)

    def now() -> datetime:
        return datetime.now(UTC).replace(microsecond=0)

    doc = parse_document(path.read_bytes(), str(path))
    doc = append_event(doc, CVE_A, Event(now(), "pending-upstream-fix", NoteData("no release")))
    doc = append_event(doc, "CVE-2024-1000", Event(now(), "fixed", Fixed("1.2.4-r0")))
    doc = add_advisory(
        doc,
        Advisory(
            id="CGA-9999-2222-3333",
            aliases=["CVE-2025-0001"],
            events=[Event(now(), "detection", Detection(type="manual"))],
        ),
    )
    path.write_bytes(write_document(doc))
    new_path = ws / "advisories" / "foo-extra.advisories.yaml"
    assert not new_path.exists()
    code, lines, stderr = _validate(ws)
    assert code == 0, (lines, stderr)
    assert "compared with HEAD" in lines[-1]

    # the same fix naming a version the (verified) index lacks is caught: the index was read
    doc = append_event(doc, CVE_A, Event(now(), "fixed", Fixed("1.2.9-r0")))
    path.write_bytes(write_document(doc))
    code, lines, _ = _validate(ws)
    assert code == 1 and "'1.2.9-r0'" in lines[0] and "[rule fixed-version-exists]" in lines[0]


def test_new_document_from_the_factory_passes(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    path = ws / "advisories" / "foo.advisories.yaml"
    event = Event(NOW, "detection", Detection(type="manual"))
    doc = new_document("foo", Advisory(CVE_A, ["CVE-2024-9999"], [event]), str(path))
    path.parent.mkdir()
    path.write_bytes(write_document(doc))
    code, lines, _ = _validate(ws)  # HEAD has no advisories folder: a new document
    assert code == 0, lines


def test_outside_git_the_diff_rules_are_skipped_with_a_note(tmp_path: Path) -> None:
    ws = tmp_path / "plain"
    (ws / "recipes").mkdir(parents=True)
    (ws / "recipes" / "foo.yaml").write_text(RECIPE)
    (ws / "nanodistro.toml").write_text('[workspace]\nname = "demo"\narchs = ["x86_64"]\n')
    _write(ws, "foo", _document("foo", {CVE_A: [_event(NOW - timedelta(days=400))]}))
    code, lines, stderr = _validate(ws)
    assert code == 0, lines
    assert "diff rules skipped" in stderr and "not in a git work tree" in stderr
    code, lines, stderr = _validate(ws, "--base", "HEAD")
    assert code == 1 and "--base" in stderr + "\n".join(lines)


def _doc(text: str, name: str = "foo.advisories.yaml") -> Document:
    return parse_document(text.encode(), name)


def test_age_boundary_with_explicit_timestamps() -> None:
    now = datetime(2025, 3, 31, 12, 0, 0, tzinfo=UTC)
    base = _doc(_document("foo", {CVE_A: [_event(now - timedelta(days=100))]}))
    for age, refused in (
        (timedelta(days=30), True),
        (timedelta(days=30) - timedelta(seconds=1), False),
        (timedelta(0), False),
    ):
        current = _doc(
            _document(
                "foo",
                {CVE_A: [_event(now - timedelta(days=100)), _event(now - age, "fixed", "1-r0")]},
            )
        )
        diff = compare_history([base], [current], now=now, base_label="base")
        assert [p.rule for p in diff.problems] == (["event-age"] if refused else []), age
        assert diff.changes["foo"].status == "modified"
        assert diff.changes["foo"].added == frozenset({(0, 1)})
    # reordering is not a modification (events are compared by value, as wolfictl does)
    two = [_event(now - timedelta(days=100)), _event(now - timedelta(days=99), "fixed", "1-r0")]
    swapped = _doc(_document("foo", {CVE_A: two[::-1]}))
    diff = compare_history(
        [_doc(_document("foo", {CVE_A: two}))], [swapped], now=now, base_label="base"
    )
    assert diff.problems == [] and diff.changes["foo"].added == frozenset()
