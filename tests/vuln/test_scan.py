"""The scanner end to end: a root, an OCI layout and the CLI against a generated OSV set."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from scan_fixture import (
    DISTRO,
    GIT_SOURCES,
    PLANTED,
    build_root,
    osv_records,
    write_osv_dir,
)

from cli_runner import run_cli
from nanodistro.advisory.triage import TriageEntry
from nanodistro.formats.tarball import TarEntry, write_tar
from nanodistro.vuln.inventory import files_from_dir, inventory_from_files
from nanodistro.vuln.osvdb import load_osv
from nanodistro.vuln.report import sarif_document
from nanodistro.vuln.scan import ScanResult, scan_inventory
from nanodistro.vuln.targets import load_targets

# libfoo's CVE-2024-0001 fixed at the installed version: triage that suppresses it
LIBFOO_FIXED = TriageEntry(
    "libfoo", "CGA-aaaa-bbbb-cccc", frozenset({"CVE-2024-0001"}), "fixed", fixed_version="1.2.3-r0"
)
SARIF_SCHEMA = Path(__file__).resolve().parents[1] / "data" / "sarif-schema-2.1.0.json"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("root")
    return build_root(tmp / "root", tmp)


@pytest.fixture(scope="module")
def osv_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_osv_dir(tmp_path_factory.mktemp("osv") / "osv")


def _scan(root: Path, osv: Path, triage: list[TriageEntry] | None = None) -> ScanResult:
    inventory = inventory_from_files(files_from_dir(root), distro="ignored", where=str(root))
    return scan_inventory(
        inventory, load_osv(osv), target=str(root), triage=triage or [], git_sources=GIT_SOURCES
    )


def _pairs(result: ScanResult) -> set[tuple[str, str]]:
    return {(f.component.name, f.vuln_id) for f in result.findings}


def test_root_scan_finds_exactly_the_planted_vulnerabilities(root: Path, osv_dir: Path) -> None:
    result = _scan(root, osv_dir)
    assert result.inventory.distro == DISTRO  # from the root's os-release
    assert _pairs(result) == PLANTED
    by_id = {(f.component.name, f.vuln_id): f for f in result.findings}
    libfoo = by_id[("libfoo", "TEST-APK-1")]
    assert (libfoo.severity, libfoo.score, libfoo.fixed_in) == ("critical", 9.8, "1.2.4-r0")
    assert libfoo.component.purl == "pkg:apk/testdistro/libfoo@1.2.3-r0?arch=x86_64"
    assert by_id[("libfoo-dev", "TEST-APK-1")].how.endswith("via origin libfoo")
    requests = by_id[("requests", "GHSA-pypi-0001")]
    assert (requests.severity, requests.fixed_in) == ("medium", "2.31.0")
    assert requests.component.owner == "py3-requests"
    assert requests.component.purl == "pkg:pypi/requests@2.25.0"
    zlibx = by_id[("zlibx", "TEST-GIT-TAG")]
    assert (zlibx.severity, zlibx.fixed_in) == ("high", "v1.2.12")
    net = by_id[("golang.org/x/net", "GO-2023-0001")]
    assert (net.component.location, net.component.version) == ("usr/bin/gotool", "v0.7.0")
    assert by_id[("lodash", "GHSA-npm-0001")].component.purl == "pkg:npm/lodash@4.17.20"
    assert not any(f.suppressed for f in result.findings)


def test_a_bad_record_is_one_warning_and_the_rest_loads(osv_dir: Path, tmp_path: Path) -> None:
    db = load_osv(osv_dir)
    assert len(db.warnings) == 1
    assert "broken.json (TEST-BROKEN)" in db.warnings[0]
    assert "events[0]" in db.warnings[0] and "skipped" in db.warnings[0]
    # Withdrawn records are not loaded; the others all are.
    assert {r.id for r in db.records} == set(osv_records()) - {"GHSA-withdrawn"}
    # The same from a zip (OSV's all.zip), with a member that is not JSON at all.
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for record_id, record in osv_records().items():
            out.writestr(f"{record_id}.json", json.dumps(record))
        out.writestr("garbage.json", b"{not json")
    db = load_osv(archive)
    assert len(db.warnings) == 1 and f"{archive}:garbage.json: not JSON" in db.warnings[0]
    assert len(db.records) == len(osv_records()) - 1


def test_advisories_apply_like_grype_with_the_wolfi_secdb(root: Path, osv_dir: Path) -> None:
    triage = [
        # fixed at the installed version: suppressed, also for the subpackage (same origin)
        LIBFOO_FIXED,
        # a false positive on the apk that owns the Python package: suppressed with the reason
        TriageEntry(
            "py3-requests",
            "CGA-dddd-eeee-ffff",
            frozenset({"CVE-2023-32681"}),
            "false-positive-determination",
            note="vulnerable-code-not-included-in-package: no proxy support",
        ),
        # fix-not-planned: kept, annotated
        TriageEntry(
            "zlibx",
            "CGA-gggg-hhhh-jjjj",
            frozenset({"TEST-GIT-TAG"}),
            "fix-not-planned",
            note="upstream abandoned this branch",
        ),
        # fixed in a version above the installed one: kept, fixed-in from the advisory
        TriageEntry(
            "cjson",
            "CGA-kkkk-mmmm-nnnn",
            frozenset({"TEST-GIT-LIST"}),
            "fixed",
            fixed_version="1.7.16-r0",
        ),
    ]
    result = _scan(root, osv_dir, triage)
    assert _pairs(result) == PLANTED  # nothing lost: suppressed findings stay, flagged
    by_name = {f.component.name: f for f in result.findings}
    assert by_name["libfoo"].suppressed and by_name["libfoo"].status == "fixed"
    assert by_name["libfoo-dev"].suppressed
    assert "CGA-aaaa-bbbb-cccc" in by_name["libfoo"].annotation
    fp = by_name["requests"]
    assert fp.suppressed and fp.status == "false-positive-determination"
    assert "vulnerable-code-not-included-in-package" in fp.annotation
    kept = by_name["zlibx"]
    assert not kept.suppressed and kept.status == "fix-not-planned"
    assert "upstream abandoned this branch" in kept.annotation
    below = by_name["cjson"]
    assert not below.suppressed and below.fixed_in == "1.7.16-r0"
    assert {f.component.name for f in result.active} == {
        "zlibx",
        "cjson",
        "golang.org/x/net",
        "stdlib",
        "lodash",
    }


def _blob(blobs: Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _entries(root: Path) -> list[TarEntry]:
    entries = []
    for directory, _, names in os.walk(root):
        for name in names:
            full = Path(directory) / name
            rel = full.relative_to(root).as_posix()
            entries.append(TarEntry(rel, mode=full.stat().st_mode & 0o777, data=full.read_bytes()))
    return entries


def make_layout(root: Path, out: Path, upper: list[TarEntry]) -> Path:
    """A two-layer OCI layout: the root, then ``upper`` (whiteouts included)."""
    blobs = out / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    layers = [
        {
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            **_blob(blobs, gzip.compress(write_tar(entries), mtime=0)),
        }
        for entries in (_entries(root), upper)
    ]
    config = _blob(
        blobs,
        json.dumps(
            {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
        ).encode(),
    )
    manifest = _blob(
        blobs,
        json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
                "layers": layers,
            }
        ).encode(),
    )
    (out / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (out / "index.json").write_text(
        json.dumps(
            {
                "schemaVersion": 2,
                "manifests": [
                    {
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        **manifest,
                        "annotations": {"org.opencontainers.image.ref.name": "build-1"},
                    }
                ],
            }
        )
    )
    return out


def test_oci_layout_layers_and_whiteouts(root: Path, osv_dir: Path, tmp_path: Path) -> None:
    # The upper layer deletes lodash (whiteout) and empties site-packages (opaque dir).
    upper = [
        TarEntry("usr/lib/node_modules/.wh.lodash", data=b""),
        TarEntry("usr/lib/python3.12/site-packages/.wh..wh..opq", data=b""),
    ]
    layout = make_layout(root, tmp_path / "layout", upper)
    for target in (str(layout), f"{layout}:build-1"):
        [scanned] = load_targets(target, distro="nanodistro")
        assert scanned.label.endswith("(x86_64)") and scanned.kind == "layout"
        result = scan_inventory(
            scanned.inventory, load_osv(osv_dir), target=scanned.label, git_sources=GIT_SOURCES
        )
        removed = {("lodash", "GHSA-npm-0001"), ("requests", "GHSA-pypi-0001")}
        assert _pairs(result) == PLANTED - removed


def test_symlinked_metadata_outside_the_root_is_not_read(tmp_path: Path, osv_dir: Path) -> None:
    """Attack: a root whose installed db and dist-info are links to files elsewhere on the
    host; scanning it must not report the host's packages as the root's."""
    outside = tmp_path / "host"
    outside.mkdir()
    (outside / "installed").write_text("P:libfoo\nV:1.2.3-r0\nA:x86_64\nC:Q1" + "A" * 27 + "=\n\n")
    (outside / "METADATA").write_text("Name: requests\nVersion: 2.25.0\n")
    hostile = tmp_path / "root"
    (hostile / "usr/lib/apk/db").mkdir(parents=True)
    (hostile / "usr/lib/apk/db/installed").symlink_to(outside / "installed")
    (hostile / "x.dist-info").mkdir()
    (hostile / "x.dist-info/METADATA").symlink_to(outside / "METADATA")
    (hostile / "linked").symlink_to(outside, target_is_directory=True)
    result = _scan(hostile, osv_dir)
    assert result.inventory.components == []
    assert result.findings == []


def _validate_sarif(document: dict[str, Any]) -> None:
    schema = json.loads(SARIF_SCHEMA.read_text())
    jsonschema.Draft4Validator.check_schema(schema)
    jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker()).validate(document)


def test_sarif_validates_against_the_sarif_2_1_0_schema(root: Path, osv_dir: Path) -> None:
    triage = [LIBFOO_FIXED]
    document = sarif_document([_scan(root, osv_dir, triage)])
    _validate_sarif(document)
    run = document["runs"][0]
    assert len(run["results"]) == len(PLANTED)
    rules = {rule["id"]: rule for rule in run["tool"]["driver"]["rules"]}
    assert rules["TEST-APK-1"]["properties"]["security-severity"] == "9.8"
    suppressed = [r for r in run["results"] if "suppressions" in r]
    assert {r["properties"]["purl"] for r in suppressed} == {
        "pkg:apk/testdistro/libfoo@1.2.3-r0?arch=x86_64",
        "pkg:apk/testdistro/libfoo-dev@1.2.3-r0?arch=x86_64",
    }
    # The schema is really checked: a result without a message is refused.
    del run["results"][0]["message"]
    with pytest.raises(jsonschema.ValidationError):
        _validate_sarif(document)


@pytest.mark.slow  # three runs of the real CLI
def test_cli_scan_json_sarif_and_fail_on(root: Path, osv_dir: Path, tmp_path: Path) -> None:
    sarif = tmp_path / "out.sarif"
    done = run_cli(tmp_path, "scan", root, "--osv", osv_dir, "--json", "--sarif", sarif)
    assert done.returncode == 0, done.stderr
    assert "broken.json (TEST-BROKEN)" in done.stderr  # the bad record, warned once
    [target] = json.loads(done.stdout)["targets"]
    found = {(f["package"]["name"], f["vulnerability"]["id"]) for f in target["findings"]}
    # No workspace, so no recipe upstreams: the GIT-range findings need them.
    assert found == PLANTED - {("zlibx", "TEST-GIT-TAG"), ("cjson", "TEST-GIT-LIST")}
    _validate_sarif(json.loads(sarif.read_text()))
    # critical (libfoo) meets --fail-on high: exit 1, saying why
    failed = run_cli(tmp_path, "scan", root, "--osv", osv_dir, "--fail-on", "high")
    assert failed.returncode == 1
    assert "at or above high (worst: critical)" in failed.stderr
    assert "TEST-APK-1" in failed.stdout and "libfoo" in failed.stdout
    bad = run_cli(tmp_path, "scan", root, "--osv", osv_dir, "--fail-on", "severe")
    assert bad.returncode != 0 and "--fail-on: expected one of low, medium" in bad.stderr


def test_cli_scan_in_a_workspace_uses_recipes_and_advisories(
    root: Path, osv_dir: Path, tmp_path: Path
) -> None:
    ws = tmp_path / "ws"
    (ws / "recipes").mkdir(parents=True)
    (ws / "nanodistro.toml").write_text(f'[vulnerabilities]\nosv = "{osv_dir}"\n')
    (ws / "recipes" / "zlibx.yaml").write_text(
        "package:\n  name: zlibx\n  version: 1.2.11\n  epoch: 1\n  description: z\n"
        "  copyright:\n    - license: Zlib\n"
        "pipeline:\n  - uses: git-checkout\n    with:\n"
        "      repository: https://github.com/example/zlibx\n"
        "      tag: v${{package.version}}\n"
        "      expected-commit: " + "d" * 40 + "\n"
    )
    done = run_cli(ws, "scan", root, "--json")
    assert done.returncode == 0, done.stderr
    [target] = json.loads(done.stdout)["targets"]
    found = {(f["package"]["name"], f["vulnerability"]["id"]) for f in target["findings"]}
    assert ("zlibx", "TEST-GIT-TAG") in found
    assert ("cjson", "TEST-GIT-LIST") not in found  # no recipe names its upstream
