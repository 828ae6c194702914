"""Whether an installed version is inside an OSV ``affected`` entry, in its ecosystem's order.

- APK order (formats/version.py, as grype and trivy use it after trimming a leading ``v``) for
  apk ecosystems: our distro, ``Wolfi``, ``Chainguard``, ``Alpine``;
- PEP 440 (``packaging``) for ``PyPI``;
- semver (formats/semver.py) for ``npm``, ``Go`` and every ``SEMVER`` range.

Ranges follow the OSV evaluation rule: events sorted by version (``introduced: "0"`` first); an
``introduced`` at or below the version turns "affected" on, a ``fixed`` at or below (or a
``last_affected`` below) turns it off; ``limit`` events bound the range from above. An explicit
``versions`` list matches by equality in the same order.

GIT ranges (commits of an upstream repository) are matched against what a recipe builds: the
repository URL, the tag or commit checked out, and the installed upstream version
(:class:`GitSource`). Without the repository's history two commits cannot be ordered, so:
the ``versions`` list (OSV enumerates the affected tags there) matches the tag or the version;
events that are tags (not 40/64-hex commits) are turned into versions (``v1.2.3``,
``zlib-1.2.3`` -> ``1.2.3``) and evaluated in APK order; a commit event matches only by identity
(our commit is an ``introduced``/``last_affected`` commit: affected; a ``fixed``/``limit`` one:
not). Anything else is not reported (no guess).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version

from nanodistro.errors import VersionError
from nanodistro.formats import semver
from nanodistro.formats import version as apkversion
from nanodistro.formats.osv import Affected, Event, Range

__all__ = [
    "APK_ECOSYSTEMS",
    "GitSource",
    "MatchResult",
    "comparator",
    "match_affected",
    "match_git",
    "tag_version",
]

#: OSV ecosystems whose versions are APK versions (besides the scanned distro's own name).
APK_ECOSYSTEMS = frozenset({"wolfi", "chainguard", "alpine", "apk"})

Compare = Callable[[str, str], int]


@dataclass(frozen=True)
class GitSource:
    """What a recipe builds from: ``repo`` URL, ``ref`` (tag or commit) and upstream ``version``."""

    repo: str
    ref: str = ""
    version: str = ""


@dataclass(frozen=True)
class MatchResult:
    affected: bool
    fixed_in: str = ""  # the fix above the installed version, "" when none is known
    how: str = ""


def _apk_compare(a: str, b: str) -> int:
    return apkversion.compare(a.removeprefix("v").removeprefix("V"), b.removeprefix("v"))


def _pep440_compare(a: str, b: str) -> int:
    try:
        va, vb = Version(a), Version(b)
    except InvalidVersion as error:
        raise VersionError(f"not a PEP 440 version: {error}") from None
    return (va > vb) - (va < vb)


def _semver_compare(a: str, b: str) -> int:
    return semver.compare(a, b)


def comparator(ecosystem_key: str, distro: str) -> Compare | None:
    """The version order of an OSV ecosystem (key = lowercased, release suffix dropped)."""
    if ecosystem_key in APK_ECOSYSTEMS or ecosystem_key == distro:
        return _apk_compare
    if ecosystem_key == "pypi":
        return _pep440_compare
    if ecosystem_key in ("npm", "go"):
        return _semver_compare
    return None


def _sorted_events(events: tuple[Event, ...], compare: Compare) -> list[Event]:
    def order(a: Event, b: Event) -> int:
        a_zero = a.kind == "introduced" and a.value == "0"
        b_zero = b.kind == "introduced" and b.value == "0"
        if a_zero or b_zero:
            return (b_zero - a_zero) if a_zero != b_zero else 0
        return compare(a.value, b.value)

    return sorted(events, key=functools.cmp_to_key(order))


def in_range(version: str, item: Range, compare: Compare) -> MatchResult:
    """Evaluate one ECOSYSTEM/SEMVER range (VersionError for values of another order)."""
    limits = [e.value for e in item.events if e.kind == "limit"]
    if limits and not any(compare(version, limit) < 0 for limit in limits):
        return MatchResult(False)
    affected = False
    for event in _sorted_events(item.events, compare):
        if event.kind == "introduced":
            if event.value == "0" or compare(version, event.value) >= 0:
                affected = True
        elif event.kind == "fixed":
            if compare(version, event.value) >= 0:
                affected = False
        elif event.kind == "last_affected" and compare(version, event.value) > 0:
            affected = False
    if not affected:
        return MatchResult(False)
    fixes = [e.value for e in item.events if e.kind == "fixed" and compare(e.value, version) > 0]
    fixes.sort(key=functools.cmp_to_key(compare))
    return MatchResult(True, fixes[0] if fixes else "", f"{item.type} range")


def match_affected(version: str, affected: Affected, compare: Compare) -> MatchResult:
    """Whether ``version`` is affected by one entry (its versions list or any non-GIT range)."""
    for listed in affected.versions:
        try:
            if compare(version, listed) == 0:
                return MatchResult(True, "", "versions list")
        except VersionError:
            continue  # one odd entry in a long list does not spoil the rest
    for item in affected.ranges:
        if item.type == "GIT":
            continue
        order = _semver_compare if item.type == "SEMVER" else compare
        result = in_range(version, item, order)
        if result.affected:
            return result
    return MatchResult(False)


_HEX = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")


def tag_version(tag: str) -> str | None:
    """``v1.2.3`` / ``zlib-1.2.3`` / ``release_1_2`` -> the version in it; None for a commit."""
    if _HEX.match(tag.lower()):
        return None
    found = re.search(r"\d[\w.+~-]*$", tag)
    if found is None:
        return None
    text = found.group(0)
    if "." not in text and "_" in text:
        text = text.replace("_", ".")
    return text


def _upstream(version: str) -> str:
    return re.sub(r"-r\d+$", "", version)


def match_git(installed: str, source: GitSource, affected: Affected, item: Range) -> MatchResult:
    """Whether a package built from ``source`` at apk version ``installed`` is inside a GIT range."""
    upstream = _upstream(installed)
    # The recipe's tag/commit describes the installed package only if it builds that version.
    ref = source.ref if not source.version or source.version == upstream else ""
    listed = set(affected.versions)
    if upstream in listed or f"v{upstream}" in listed or (ref and ref in listed):
        return MatchResult(True, "", f"GIT {item.repo} (versions list)")
    if ref and _HEX.match(ref.lower()):
        for event in item.events:
            if event.value.lower() == ref.lower():
                hit = event.kind in ("introduced", "last_affected")
                return MatchResult(hit, "", f"GIT {item.repo} (commit {ref[:12]})")
    # Tag events, evaluated as upstream versions in APK order.
    events: list[Event] = []
    for event in item.events:
        if event.kind == "introduced" and event.value == "0":
            events.append(event)
            continue
        value = tag_version(event.value)
        if value is None or not apkversion.is_valid(value, legacy=True):
            return MatchResult(False)
        events.append(Event(event.kind, value))
    if not apkversion.is_valid(upstream, legacy=True):
        return MatchResult(False)
    result = in_range(upstream, Range("ECOSYSTEM", tuple(events)), _apk_compare)
    if not result.affected:
        return result
    fix_tags = {tag_version(e.value): e.value for e in item.events if e.kind == "fixed"}
    return MatchResult(True, fix_tags.get(result.fixed_in, result.fixed_in), f"GIT {item.repo}")
