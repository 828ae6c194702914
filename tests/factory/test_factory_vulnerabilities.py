"""CVE -> fix without a human, on the miniature catalog, offline.

A first cycle builds and promotes the catalog (libgreet 1.2.0). Then an OSV record appears naming
libgreet's shipped version, with the fix in 1.3.0, and the loopback upstream publishes 1.3.0:
one cycle later stable holds libgreet 1.3.0-r0, the advisory has ``detection`` and ``fixed``
events, the secdb published beside the repository names the fix, and freshness has the
vulnerability's clock. A critical vulnerability with no fix keeps the changed image out of
stable under ``[gates] block = ["critical"]`` until an advisory accepts it. Bad OSV records and
advisory files are warned about and skipped; the cycle goes on.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from factory_catalog import FirstCycle, copy_first_cycle
from mini_catalog import factory_once, release_libgreet
from nanodistro.cli import app

pytestmark = pytest.mark.slow

CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def osv_record(vuln: str, package: str, fixed: str | None) -> dict[str, Any]:
    events: list[dict[str, str]] = [{"introduced": "0"}]
    if fixed:
        events.append({"fixed": fixed})
    return {
        "schema_version": "1.6.0",
        "id": vuln,
        "modified": "2026-12-01T00:00:00Z",
        "published": "2026-12-01T00:00:00Z",
        "summary": f"{package}: buffer overflow",
        "severity": [{"type": "CVSS_V3", "score": CRITICAL}],
        "affected": [
            {
                "package": {"ecosystem": "mini", "name": package},
                "ranges": [{"type": "ECOSYSTEM", "events": events}],
            }
        ],
    }


def stable_packages(root: Path) -> dict[str, str]:
    from nanodistro.formats.apkindex import read_index

    index = root / "out/packages/stable/x86_64/APKINDEX.tar.gz"
    return {p.name: p.version for p in read_index(index.read_bytes(), where=str(index)).packages}


def advisory_events(root: Path, package: str, vuln: str) -> list[tuple[str, str | None]]:
    from nanodistro.advisory.decode import parse_document

    path = root / "advisories" / f"{package}.advisories.yaml"
    advisory = parse_document(path.read_bytes(), str(path)).get(vuln)
    assert advisory is not None, path.read_text()
    return [(e.type, e.fixed_version) for e in advisory.sorted_events()]


@dataclass
class Catalog:
    root: Path  # the miniature catalog after its first cycle (a git work tree)
    served: Path  # the loopback upstream's folder: release_libgreet() publishes into it


@pytest.fixture(scope="module")
def built(first_cycle: FirstCycle, tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """This module's copy of the session's first cycle (tests/factory_catalog.py); the upstream
    keeps serving for the tests' own cycles."""
    report = first_cycle.report
    # no OSV data yet: said, not an error
    vulns: Any = report["vulnerabilities"]
    assert vulns["scanned"] == "" and "vuln update" in vulns["note"]
    root = copy_first_cycle(first_cycle, tmp_path_factory.mktemp("vulns"))
    return Catalog(root, first_cycle.served)


def workspace_copy(built: Catalog, tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    shutil.copytree(built.root, root, symlinks=True)
    return root


def test_cve_in_stable_is_fixed_by_the_upstream_release_within_one_cycle(
    built: Catalog, tmp_path: Path
) -> None:
    served = built.served
    root = workspace_copy(built, tmp_path)
    osv = root / ".nanodistro/osv"
    osv.mkdir(parents=True)
    (osv / "CVE-2026-4242.json").write_text(
        json.dumps(osv_record("CVE-2026-4242", "libgreet", "1.3.0-r0"))
    )
    (osv / "broken.json").write_text("{ not json")  # skipped with a warning
    (root / "advisories").mkdir()
    (root / "advisories/broken.advisories.yaml").write_text("schema-version: [oops\n")
    assert stable_packages(root)["libgreet"] == "1.2.0-r0"

    release_libgreet(served, "1.3.0")
    try:
        report = factory_once(root)
    finally:
        (served / "libgreet-1.3.0.tar.gz").unlink()

    assert report["status"] == "promoted", json.dumps(report, indent=1)[:4000]
    assert stable_packages(root)["libgreet"] == "1.3.0-r0"
    vulns = report["vulnerabilities"]
    assert vulns["detected"] == ["libgreet CVE-2026-4242"]
    assert vulns["fix_available"] == ["libgreet CVE-2026-4242: 1.3.0 upstream"]
    assert vulns["fixed"] == ["libgreet CVE-2026-4242 fixed in 1.3.0-r0"]
    assert len(vulns["warnings"]) == len(set(vulns["warnings"])), vulns["warnings"]  # said once
    warnings = "\n".join(vulns["warnings"])
    assert "broken.json" in warnings and "broken.advisories.yaml" in warnings
    assert advisory_events(root, "libgreet", "CVE-2026-4242") == [
        ("detection", None),
        ("fixed", "1.3.0-r0"),
    ]
    # the secdb published beside the repository names the fix, as grype and trivy read it
    secdb = json.loads((root / "out/packages/security.json").read_text())
    fixes = {p["pkg"]["name"]: p["pkg"]["secfixes"] for p in secdb["packages"]}
    assert fixes["libgreet"] == {"1.3.0-r0": ["CVE-2026-4242"]}
    # the clock: detected -> fixed in stable -> first stable image after the fix
    fresh = json.loads(cli("freshness", str(root), "--json").stdout)
    (clock,) = [v for v in fresh["vulnerabilities"] if v["vulnerability"] == "CVE-2026-4242"]
    assert clock["fixed_version"] == "1.3.0-r0"
    assert clock["detected"] <= clock["fixed"]
    assert clock["images"] == ["hello"] and clock["detected_to_image_promoted"] is not None
    assert fresh["stats"]["vulnerability_to_fixed_image"]["count"] == 1
    # a later cycle changes nothing: no second detection or fix
    again = factory_once(root, "--no-monitor")
    assert again["vulnerabilities"]["detected"] == [] and again["vulnerabilities"]["fixed"] == []
    assert advisory_events(root, "libgreet", "CVE-2026-4242")[-1] == ("fixed", "1.3.0-r0")
    # and `nanodistro scan` of stable agrees: of the versions the repository keeps, only the
    # old one is affected
    scan = cli("scan", str(root / "out/packages/stable"), "--workspace", str(root), "--json")
    assert scan.exit_code == 0, scan.output
    (target,) = json.loads(scan.stdout)["targets"]
    assert {("libgreet", "1.2.0-r0"), ("libgreet", "1.3.0-r0")} <= {
        (p["name"], p["version"]) for p in target["packages"]
    }
    assert [
        (f["package"]["version"], f["vulnerability"]["id"])
        for f in target["findings"]
        if not f["suppressed"]
    ] == [("1.2.0-r0", "CVE-2026-4242")]


def test_unaccepted_critical_vulnerability_keeps_the_image_out_of_stable(
    built: Catalog, tmp_path: Path
) -> None:
    served = built.served
    root = workspace_copy(built, tmp_path)
    toml = root / "nanodistro.toml"
    toml.write_text(toml.read_text() + '\n[gates]\nblock = ["critical"]\n')
    osv = root / ".nanodistro/osv"
    osv.mkdir(parents=True)
    (osv / "CVE-2026-5151.json").write_text(json.dumps(osv_record("CVE-2026-5151", "hello", None)))
    stable_before = stable_packages(root)

    release_libgreet(served, "1.3.0")  # hello embeds libgreet: rebuilt, its image changes
    try:
        report = factory_once(root)
    finally:
        (served / "libgreet-1.3.0.tar.gz").unlink()

    assert report["status"] == "gate-blocked", json.dumps(report, indent=1)[:4000]
    assert (
        "image hello: CVE-2026-5151 (critical) in hello-2.0-r1, not fixed and not accepted "
        "in an advisory" in report["gate"]["reasons"]
    )
    assert stable_packages(root) == stable_before
    # no upstream release fixes it: the factory says so in the advisory (which does not unblock)
    assert report["vulnerabilities"]["pending"] == ["hello CVE-2026-5151"]
    assert [t for t, _ in advisory_events(root, "hello", "CVE-2026-5151")] == [
        "detection",
        "pending-upstream-fix",
    ]
    blocked = factory_once(root, "--no-monitor")
    assert blocked["status"] == "gate-blocked"

    # a person accepts it: the next cycle promotes
    accepted = cli(
        "advisory", "update", "--workspace", str(root), "--package", "hello",
        "--vuln", "CVE-2026-5151", "--type", "fix-not-planned",
        "--note", "hello is a demo program; the overflow needs a local attacker",
    )  # fmt: skip
    assert accepted.exit_code == 0, accepted.output
    promoted = factory_once(root, "--no-monitor")
    assert promoted["status"] == "promoted", json.dumps(promoted, indent=1)[:4000]
    assert stable_packages(root)["hello"] == "2.0-r1"
