"""``nanodistro lint --summary``: a corpus report, findings counted per rule.

For a whole recipe repository the per-finding listing is thousands of lines; the summary answers
"which rules fire, how often, in how many recipes" so runs can be compared rule by rule (with
wolfictl's findings, or before and after a change).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nanodistro.recipe.lint.model import LintResult, Severity


def summarize(results: Sequence[LintResult]) -> dict[str, Any]:
    """Counts of ``results``: recipes, loaded, clean, and per rule its severity, findings and
    recipes (rules sorted by recipes affected, then name)."""
    rules: dict[str, dict[str, Any]] = {}
    for result in results:
        seen: set[str] = set()
        for finding in result.findings:
            entry = rules.setdefault(
                finding.rule, {"severity": finding.severity, "findings": 0, "recipes": 0}
            )
            entry["findings"] += 1
            if finding.rule not in seen:
                seen.add(finding.rule)
                entry["recipes"] += 1
    ordered = dict(sorted(rules.items(), key=lambda item: (-item[1]["recipes"], item[0])))
    return {
        "recipes": len(results),
        "loaded": sum(result.loaded for result in results),
        "clean": sum(result.clean for result in results),
        "rules": ordered,
    }


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The text form: one line per rule, then the totals."""
    rules: dict[str, dict[str, Any]] = summary["rules"]
    width = max([len("rule"), *(len(name) for name in rules)])
    lines = [f"{'rule':{width}}  severity  findings  recipes"]
    for name, entry in rules.items():
        severity: Severity = entry["severity"]
        lines.append(f"{name:{width}}  {severity:8}  {entry['findings']:8}  {entry['recipes']:7}")
    lines.append(
        f"{summary['recipes']} recipe(s): {summary['loaded']} load, {summary['clean']} clean"
    )
    return lines
