"""``nanodistro advisory`` and ``nanodistro feeds`` on a temporary workspace, through the CLI."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from cli_runner import run_cli
from nanodistro.advisory.decode import parse_document
from nanodistro.advisory.validate import document_problems

RECIPE = """package:
  name: foo
  version: 1.2.3
  epoch: 0
  description: foo
subpackages:
  - name: foo-dev
    pipeline: []
pipeline: []
"""


def _workspace(tmp_path: Path) -> Path:
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "foo.yaml").write_text(RECIPE)
    (tmp_path / "nanodistro.toml").write_text('[workspace]\nname = "demo"\narchs = ["x86_64"]\n')
    return tmp_path


def _foo_advisory(
    ws: Path, verb: str, vulnerability: str, *args: str
) -> subprocess.CompletedProcess[str]:
    """``nanodistro advisory <verb> -p foo -V <vulnerability> <args>`` in ``ws``."""
    return run_cli(ws, "advisory", verb, "-p", "foo", "-V", vulnerability, *args)


def test_create_update_list_validate_feeds(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    created = _foo_advisory(ws, "create", "CVE-2024-1234")
    assert created.returncode == 0, created.stderr
    cga = created.stdout.strip()
    assert cga.startswith("CGA-")
    other = _foo_advisory(
        ws,
        "create",
        "GHSA-2222-3333-4444",
        "-t",
        "false-positive-determination",
        "--fp-type",
        "component-vulnerability-mismatch",
        "--note",
        "not this component",
    )
    assert other.returncode == 0, other.stderr
    assert other.stdout.strip() != cga
    update = _foo_advisory(
        ws,
        "update",
        "CVE-2024-1234",
        "-t",
        "fixed",
        "--fixed-version",
        "1.2.4-r0",
        "--timestamp",
        "2030-01-01T00:00:00Z",
    )
    assert update.returncode == 1 and "[rule timestamp]" in update.stderr  # in the future
    update = _foo_advisory(ws, "update", "CVE-2024-1234", "-t", "fixed", "--fixed-version", "1.2.4")
    assert update.returncode == 1 and "[rule fixed-version]" in update.stderr
    update = _foo_advisory(ws, "update", cga, "-t", "fixed", "--fixed-version", "1.2.4-r0")
    assert update.returncode == 0, update.stderr
    path = ws / "advisories" / "foo.advisories.yaml"
    doc = parse_document(path.read_bytes(), str(path))
    assert document_problems(doc) == []
    assert [e.type for e in doc.get(cga).events] == ["detection", "fixed"]  # type: ignore[union-attr]

    listed = json.loads(run_cli(ws, "advisory", "list", "--json").stdout)
    assert {(r["id"], r["latest"]) for r in listed} >= {(cga, "fixed")}
    assert json.loads(run_cli(ws, "advisory", "list", "--json", "--unresolved").stdout) == []
    assert (
        json.loads(run_cli(ws, "advisory", "list", "--json", "--vuln", "CVE-2024-1234").stdout)[0][
            "id"
        ]
        == cga
    )
    shown = run_cli(ws, "advisory", "show", "CVE-2024-1234")
    assert "package: foo" in shown.stdout and "1.2.4-r0" in shown.stdout
    assert run_cli(ws, "advisory", "show", "foo").stdout == path.read_text()

    valid = run_cli(ws, "advisory", "validate")
    assert valid.returncode == 0, valid.stdout

    result = run_cli(ws, "feeds", "out", "--json")
    assert result.returncode == 0, result.stderr
    secdb = json.loads((ws / "out" / "security.json").read_text())
    assert secdb["packages"][0]["pkg"] == {
        "name": "foo",
        "secfixes": {"0": ["GHSA-2222-3333-4444"], "1.2.4-r0": ["CVE-2024-1234"]},
    }
    record = json.loads((ws / "out" / "osv" / f"{cga}.json").read_text())
    assert [a["package"]["purl"] for a in record["affected"]] == [
        "pkg:apk/demo/foo",
        "pkg:apk/demo/foo-dev",
    ]
    vex = json.loads((ws / "out" / "openvex" / "foo.openvex.json").read_text())
    assert {s["status"] for s in vex["statements"]} == {"fixed", "not_affected"}


def test_validate_reports_every_problem_and_bad_files_are_skipped_elsewhere(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    assert (
        _foo_advisory(
            ws, "create", "CVE-2024-1234", "-t", "fixed", "--fixed-version", "1.2.4-r0"
        ).returncode
        == 0
    )
    advisories = ws / "advisories"
    (advisories / "bar.advisories.yaml").write_text(
        (advisories / "foo.advisories.yaml")
        .read_text()
        .replace("name: foo", "name: bar")
        .replace("timestamp:", "stamp:")
    )
    (advisories / "baz.advisories.yaml").write_text(
        (advisories / "foo.advisories.yaml").read_text().replace("name: foo", "name: qux")
    )
    result = run_cli(ws, "advisory", "validate")
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert any("bar.advisories.yaml" in line and "[rule strict-keys]" in line for line in lines)
    assert any("baz.advisories.yaml" in line and "[rule file-name]" in line for line in lines)
    assert any("[rule package-exists]" in line and "'qux'" in line for line in lines)
    assert any("[rule duplicate-id]" in line for line in lines)
    listed = run_cli(ws, "advisory", "list", "--json")
    assert (
        listed.returncode == 0
        and "skipped" in listed.stderr
        and "bar.advisories.yaml" in listed.stderr
    )
    feeds = run_cli(ws, "feeds", "out")
    assert feeds.returncode == 0 and "skipped" in feeds.stderr
    assert (
        json.loads((ws / "out" / "security.json").read_text())["packages"][0]["pkg"]["name"]
        == "foo"
    )
