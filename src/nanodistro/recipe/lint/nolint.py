"""``#nolint:RULE[,RULE…]`` directives: which findings a recipe waives, and where.

wolfictl (pkg/melange findNoLint) reads a line that *starts* with ``#nolint:`` and skips the named
rules for the whole file; Wolfi recipes put it on line 1 or 2. nanodistro honours that form the
same way (every such line, so a recipe clean under wolfictl stays clean here) and adds a scoped
form: a ``# nolint:RULE`` comment after a key, or on its own line above a key, waives the rule only
for that key and what is nested under it (a ``runs:`` line, a ``uses:`` step, one list item).

wolfictl's rule names that differ from ours waive the matching rule here too
(``valid-pipeline-git-checkout-tag`` → ``valid-pipeline-git-checkout-tag-or-branch``…); names of
other linters' rules (Wolfi files carry ``#nolint:documentation``) are ignored, as wolfictl does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# wolfictl name -> the nanodistro rules that check the same thing
WOLFICTL_ALIASES: dict[str, frozenset[str]] = {
    "valid-pipeline-git-checkout-tag": frozenset({"valid-pipeline-git-checkout-tag-or-branch"}),
    "valid-pipeline-git-checkout-commit": frozenset({"missing-expected-commit"}),
    # wolfictl's digest rule also reports a fetch without any digest
    "valid-pipeline-fetch-digest": frozenset({"valid-pipeline-fetch-digest", "missing-checksum"}),
    "bad-version": frozenset({"invalid-version"}),
    "valid-spdx-license": frozenset({"invalid-license"}),
}

_FILE_DIRECTIVE = "#nolint:"
# a YAML (or shell) comment: '#' at the start of the content or after white space
_SCOPED_DIRECTIVE = re.compile(r"(?:^|\s)#\s*nolint:\s*([A-Za-z0-9_,\s-]+)")
_RULE_NAME = re.compile(r"[A-Za-z0-9_-]+")


def _rule_names(listed: str) -> set[str]:
    names: set[str] = set()
    for item in listed.split(","):
        match = _RULE_NAME.match(item.strip())
        if match:
            names.add(match.group(0))
            names |= WOLFICTL_ALIASES.get(match.group(0), frozenset())
    return names


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _block_end(lines: list[str], start: int) -> int:
    """Last line (1-based) of the YAML node that begins on line ``start``: the lines after it
    indented deeper (blank lines included), plus a compact sequence at the same indentation
    under a ``key:`` line."""
    head = lines[start - 1]
    indent = _indent(head)
    is_item = head.lstrip(" ").startswith("- ")
    end = start
    for number in range(start + 1, len(lines) + 1):
        line = lines[number - 1]
        if not line.strip():
            continue
        deeper = _indent(line) > indent
        same_level_item = (
            not is_item and _indent(line) == indent and line.lstrip(" ").startswith("- ")
        )
        if not (deeper or same_level_item):
            break
        end = number
    return end


@dataclass
class NoLint:
    """The waivers of one recipe text."""

    file_rules: set[str] = field(default_factory=set)
    # (first line, last line, rules): findings on those lines skip those rules
    scoped: list[tuple[int, int, set[str]]] = field(default_factory=list)

    def waives(self, rule: str, line: int | None) -> bool:
        """Whether a finding of ``rule`` at ``line`` is waived."""
        if rule in self.file_rules:
            return True
        if line is None:
            return False
        return any(first <= line <= last and rule in rules for first, last, rules in self.scoped)


def parse_nolint(text: str) -> NoLint:
    """The ``#nolint`` directives of recipe ``text``."""
    lines = text.splitlines()
    result = NoLint()
    for number, line in enumerate(lines, start=1):
        if line.startswith(_FILE_DIRECTIVE):
            result.file_rules |= _rule_names(line[len(_FILE_DIRECTIVE) :])
            continue
        match = _SCOPED_DIRECTIVE.search(line)
        if not match:
            continue
        rules = _rule_names(match.group(1))
        if not rules:
            continue
        target = number
        if line.lstrip().startswith("#"):
            # a comment line of its own: it waives the next line that has content
            following = [
                n
                for n in range(number + 1, len(lines) + 1)
                if lines[n - 1].strip() and not lines[n - 1].lstrip().startswith("#")
            ]
            if not following:
                continue
            target = following[0]
        result.scoped.append((target, _block_end(lines, target), rules))
    return result
