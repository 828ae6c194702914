"""``nanodistro lint``: recipe rules as data (name, severity, description, check).

Rules cover what nanodistro's invariants need (hermetic, verified sources; a release monitor; valid
versions and licences) plus the wolfictl lint rules that apply to any melange recipe
(wolfi-dev/wolfictl pkg/lint/rules.go, reference/security.md §7.1). Checks receive a
:class:`LintContext` and yield ``(key path, message)``; the path gives the reported line.

This package re-exports the public API; each module has one job: ``model`` (findings, context,
rule record, result), ``runner`` (the rule table, ``lint_text``/``lint_path``), and the rules by
theme: ``sources``, ``pipelines``, ``metadata``, ``update`` and ``history`` (git history and
``epoch-not-reset``); ``network`` (``network-in-runs``), ``nolint`` (``#nolint`` waivers) and
``summary`` (the ``--summary`` corpus report).
"""

from __future__ import annotations

from nanodistro.recipe.lint.history import git_previous_text
from nanodistro.recipe.lint.metadata import license_problem
from nanodistro.recipe.lint.model import Finding, LintContext, LintResult, Rule, Severity
from nanodistro.recipe.lint.runner import (
    RULES,
    RULES_BY_NAME,
    describe_rules,
    lint_path,
    lint_text,
)
from nanodistro.recipe.lint.summary import summarize, summary_lines
from nanodistro.recipe.yamlsource import format_path

__all__ = [
    "RULES",
    "RULES_BY_NAME",
    "Finding",
    "LintContext",
    "LintResult",
    "Rule",
    "Severity",
    "describe_rules",
    "format_path",
    "git_previous_text",
    "license_problem",
    "lint_path",
    "lint_text",
    "summarize",
    "summary_lines",
]
