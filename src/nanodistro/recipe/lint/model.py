"""The lint data model: findings, what a rule may look at, the rule record and one file's result.

Rules are data (``Rule``: name, severity, description, check); a check receives a
:class:`LintContext` and yields ``Problem`` values, ``(key path | line | None, message)``, which the
runner turns into :class:`Finding` lines of a :class:`LintResult`. ``step_uses`` is the one query
rules of every theme share.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from nanodistro.errors import NanodistroError
from nanodistro.recipe.model import Recipe
from nanodistro.recipe.pipelines import recipe_uses
from nanodistro.recipe.yamlsource import KeyPath, YamlDocument

Severity = Literal["error", "warning", "info"]
# Where a problem is: a key path (reported at its line), a line number, or None (whole file).
Problem = tuple[KeyPath | int | None, str]


@dataclass(frozen=True)
class Finding:
    """One lint result; ``line`` is 1-based (None when the file has no such place)."""

    file: str
    line: int | None
    rule: str
    severity: Severity
    message: str

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` form."""
        return {
            "file": self.file,
            "line": self.line,
            "rule": self.rule,
            "severity": self.severity,
            "message": self.message,
        }

    def __str__(self) -> str:
        location = f"{self.file}:{self.line}" if self.line else self.file
        return f"{location}: {self.severity}: {self.message} [{self.rule}]"


@dataclass
class LintContext:
    """What a rule may look at. ``recipe`` is None when the file did not load."""

    doc: YamlDocument
    recipe: Recipe | None
    pipeline_names: set[str]
    path: Path | None = None
    previous_text: Callable[[], str | None] = lambda: None
    pipeline_dirs: Sequence[Path] = ()

    def line_in_text(self, path: KeyPath, needle: str) -> int | None:
        """Line of the first source line at or after ``path`` containing ``needle`` (a line of
        a ``runs: |`` block), else the line of ``path``."""
        start = self.doc.line_of(path)
        if start is None:
            return None
        lines = self.doc.text.splitlines()
        window = range(start, min(len(lines), start + 2000) + 1)
        # a whole line first (a continued command's first line), so that "pip install \\"
        # is not placed on an earlier "pip install --upgrade pip" that contains it
        for number in window:
            if lines[number - 1].strip().removesuffix("\\").strip() == needle:
                return number
        for number in window:
            if needle in lines[number - 1]:
                return number
        return start

    @property
    def raw(self) -> dict[str, Any]:
        """The raw YAML mapping (strings as written)."""
        return self.doc.data if isinstance(self.doc.data, dict) else {}


@dataclass(frozen=True)
class Rule:
    """A lint rule. ``needs_model``: skipped when the recipe does not load."""

    name: str
    severity: Severity
    description: str
    check: Callable[[LintContext], Iterable[Problem]]
    needs_model: bool = True


# --- running -----------------------------------------------------------------------------------


@dataclass
class LintResult:
    """Findings of one file; ``loaded`` is False when the recipe itself is invalid."""

    file: str
    findings: list[Finding] = field(default_factory=list)
    loaded: bool = True

    @property
    def errors(self) -> list[Finding]:
        """Findings of severity error (load errors included)."""
        return [f for f in self.findings if f.severity == "error"]

    @property
    def clean(self) -> bool:
        """Loaded and without errors (warnings and infos allowed)."""
        return self.loaded and not self.errors


def step_uses(ctx: LintContext, name: str) -> Iterator[tuple[KeyPath, dict[str, str]]]:
    """``(key path, with:)`` of every step that runs ``uses: name``."""
    assert ctx.recipe is not None
    for use in recipe_uses(ctx.recipe):
        if use.uses == name:
            yield use.path, use.with_


def error_text(error: NanodistroError) -> str:
    """An error as one finding message: ``field: message``."""
    return f"{error.field}: {error.message}" if error.field else error.message
