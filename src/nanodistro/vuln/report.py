"""Scan results as a JSON document and as SARIF 2.1.0 (docs.oasis-open.org/sarif/sarif/v2.1.0).

SARIF: one run whose driver is nanodistro; one rule per vulnerability id (its summary, help URI
and GitHub's ``security-severity`` property, the CVSS score as a string); one result per
(package, vulnerability) located at the file the package was found in. Findings our advisories
suppress are results too, carrying a ``suppressions`` entry (``kind: external``, the advisory's
reason as justification), so a viewer shows them as triaged instead of losing them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nanodistro import __version__
from nanodistro.vuln.scan import Finding, ScanResult

__all__ = ["SARIF_SCHEMA", "sarif_document", "scan_document"]

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://nanodistro.dev"
# SARIF levels: error/warning/note; GitHub maps security-severity to its own labels.
_LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note"}
# A representative score per level when a record gives only a qualitative severity.
_LEVEL_SCORE = {"critical": 9.0, "high": 7.0, "medium": 5.0, "low": 2.0, "none": 0.0}


def scan_document(results: Sequence[ScanResult]) -> dict[str, Any]:
    """The ``--json`` output: per target its packages, findings (suppressed ones flagged) and
    warnings."""
    return {
        "scanner": f"nanodistro {__version__}",
        "targets": [
            {
                "target": result.target,
                "distro": result.inventory.distro,
                "packages": [
                    {
                        "name": c.name,
                        "version": c.version,
                        "ecosystem": c.ecosystem,
                        "purl": c.purl,
                        "location": c.location,
                    }
                    for c in result.inventory.components
                ],
                "findings": [f.to_dict() for f in result.findings],
                "warnings": list(result.warnings),
            }
            for result in results
        ],
    }


def _rule(finding: Finding) -> dict[str, Any]:
    score = finding.score if finding.score is not None else _LEVEL_SCORE.get(finding.severity)
    text = finding.summary or finding.vuln_id
    rule: dict[str, Any] = {
        "id": finding.vuln_id,
        "name": finding.vuln_id.replace("-", ""),
        "shortDescription": {"text": text},
        "fullDescription": {"text": text},
        "properties": {
            "tags": ["security", "vulnerability"],
            "severity": finding.severity,
            **({"security-severity": f"{score:.1f}"} if score is not None else {}),
            **({"aliases": list(finding.aliases)} if finding.aliases else {}),
        },
    }
    if finding.url:
        rule["helpUri"] = finding.url
    return rule


def _result(finding: Finding, rule_index: int, target: str) -> dict[str, Any]:
    c = finding.component
    fix = f", fixed in {finding.fixed_in}" if finding.fixed_in else ", no fix known"
    note = f" ({finding.annotation})" if finding.annotation else ""
    result: dict[str, Any] = {
        "ruleId": finding.vuln_id,
        "ruleIndex": rule_index,
        "level": _LEVEL.get(finding.severity, "note"),
        "message": {
            "text": f"{c.name} {c.version} ({c.ecosystem}) is affected by {finding.vuln_id}"
            f"{fix}{note}"
        },
        "locations": [
            {
                "physicalLocation": {"artifactLocation": {"uri": c.location}},
                "logicalLocations": [{"name": c.name, "fullyQualifiedName": c.purl}],
            }
        ],
        "partialFingerprints": {"purlVuln": f"{c.purl}#{finding.vuln_id}"},
        "properties": {
            "target": target,
            "purl": c.purl,
            "installed": c.version,
            "fixedIn": finding.fixed_in,
            "status": finding.status,
        },
    }
    if finding.suppressed:
        result["suppressions"] = [
            {"kind": "external", "status": "accepted", "justification": finding.annotation}
        ]
    return result


def sarif_document(results: Sequence[ScanResult]) -> dict[str, Any]:
    rules: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    sarif_results: list[dict[str, Any]] = []
    for result in results:
        for finding in result.findings:
            if finding.vuln_id not in index:
                index[finding.vuln_id] = len(rules)
                rules.append(_rule(finding))
            sarif_results.append(_result(finding, index[finding.vuln_id], result.target))
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "nanodistro",
                        "version": __version__,
                        "informationUri": INFORMATION_URI,
                        "rules": rules,
                    }
                },
                "results": sarif_results,
            }
        ],
    }
