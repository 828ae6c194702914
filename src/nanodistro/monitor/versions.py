"""From raw upstream names to "the latest version": the filter chain and version ordering.

The chain mirrors wolfictl's ``prepareVersion`` (wolfictl@96fcac24:pkg/update/githubReleases.go):
prefix filters, contains filter, strip-prefix, strip-suffix, ignore-regex-patterns,
version-separator, pre-release skip, version-transform.

Ordering picks the strictest scheme every candidate satisfies: plain numeric (integer tuples, so
calendar versions like ``2024.01.15`` order as dates), APK (apk-tools' version.c, the order
``package.version`` is compared in), PEP 440, semver, then a loose numeric order.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from packaging.version import InvalidVersion, Version

from nanodistro.errors import MonitorError
from nanodistro.formats import version as apk_version
from nanodistro.monitor.models import Candidate, UpstreamRelease
from nanodistro.recipe.substitute import apply_go_template
from nanodistro.recipe.update import UpdateConfig

# wolfictl skips a version whose lowercase form contains one of these (unless
# enable-prerelease-tags); "dev" is added because PEP 440 and calendar projects use it.
_PRERELEASE = re.compile(r"alpha|beta|rc|pre|dev|snapshot|nightly", re.IGNORECASE)
_SEMVER = re.compile(
    r"^(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<pre>[0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$"
)


def _compile(pattern: str, field: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as error:
        raise MonitorError(
            f"invalid regular expression {pattern!r}: {error}", field=field
        ) from None


def _expand(template: str, match: re.Match[str]) -> str:
    return apply_go_template(template, match)  # Go's ${1} / $1 / $$, as melange's transforms


def looks_prerelease(version: str) -> bool:
    """wolfictl's pre-release test, extended with PEP 440 and semver pre-release markers."""
    if _NUMERIC.match(version):
        return False  # most upstream versions: nothing to look for, and Version() is slow
    if _PRERELEASE.search(version):
        return True
    semver = _SEMVER.match(version)
    if semver and semver.group("pre"):
        return True
    try:
        return Version(version).is_prerelease
    except InvalidVersion:
        return False


@dataclass(frozen=True)
class _Chain:
    """The recipe's filter chain, read from its ``update:`` block once for all releases."""

    prefixes: tuple[str, ...]
    contains: tuple[str, ...]
    strip_prefix: str
    strip_suffix: str
    ignore: tuple[re.Pattern[str], ...]
    separator: str
    prereleases: bool
    transforms: tuple[tuple[re.Pattern[str], str], ...]

    @classmethod
    def of(cls, update: UpdateConfig, block: Any) -> _Chain:
        # Blocks differ in which filters they have (release-monitor says version-filter-*).
        def text(name: str) -> str:
            value = getattr(block, name, None) if block is not None else None
            return value or ""

        prefixes = (text("tag_filter"), text("tag_filter_prefix"), text("version_filter_prefix"))
        contains = (text("tag_filter_contains"), text("version_filter_contains"))
        return cls(
            prefixes=tuple(p for p in prefixes if p),
            contains=tuple(c for c in contains if c),
            strip_prefix=text("strip_prefix"),
            strip_suffix=text("strip_suffix"),
            ignore=tuple(
                _compile(p, "update.ignore-regex-patterns") for p in update.ignore_regex_patterns
            ),
            separator=update.version_separator or "",
            prereleases=update.enable_prerelease_tags,
            transforms=tuple(
                (_compile(t.match, "update.version-transform.match"), t.replace)
                for t in update.version_transform
            ),
        )

    def apply(self, raw: str, prerelease_flag: bool) -> str | None:
        version = raw.strip()
        if any(not version.startswith(prefix) for prefix in self.prefixes):
            return None
        if any(part not in version for part in self.contains):
            return None
        if self.strip_prefix:
            version = version.removeprefix(self.strip_prefix)
        if self.strip_suffix:
            version = version.removesuffix(self.strip_suffix)
        if any(pattern.search(version) for pattern in self.ignore):
            return None
        if self.separator:
            version = version.replace(self.separator, ".")
        if not self.prereleases and (prerelease_flag or looks_prerelease(version)):
            return None
        for regex, replace in self.transforms:
            version = regex.sub(functools.partial(_expand, replace), version)
        if not version or not any(ch.isdigit() for ch in version):
            return None  # "latest", "nightly", "stable": not versions
        return version


def prepare_version(
    raw: str, update: UpdateConfig, block: Any, *, prerelease_flag: bool = False
) -> str | None:
    """Apply the recipe's filter chain to one upstream name; None when it is filtered out."""
    return _Chain.of(update, block).apply(raw, prerelease_flag)


def prepare_releases(
    releases: Iterable[UpstreamRelease], update: UpdateConfig, block: Any
) -> list[Candidate]:
    """Filter and transform releases; when two map to one version the first listed wins."""
    chain = _Chain.of(update, block)
    seen: dict[str, Candidate] = {}
    for release in releases:
        version = chain.apply(release.version, release.prerelease)
        if version is not None and version not in seen:
            seen[version] = Candidate(version=version, release=release)
    return list(seen.values())


# --- ordering -----------------------------------------------------------------------------------


Comparator = Callable[[str, str], int]


def _compare_by(key: Callable[[str], Any]) -> Comparator:
    """A -1/0/1 comparator ordering versions by ``key``."""

    def compare(a: str, b: str) -> int:
        ka, kb = key(a), key(b)
        return (ka > kb) - (ka < kb)

    return compare


def _semver_key(version: str) -> tuple[Any, ...]:
    m = _SEMVER.match(version)
    assert m is not None
    pre = m.group("pre")
    pre_key: tuple[Any, ...] = (1,)
    if pre:
        pre_key = (
            0,
            tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")),
        )
    return (int(m.group("major")), int(m.group("minor")), int(m.group("patch")), pre_key)


def _loose_key(version: str) -> tuple[tuple[int, int, str], ...]:
    # Numbers order numerically and above words, so 1.10 > 1.9 and 1.0 > 1.0rc.
    return tuple(
        (1, int(tok), "") if tok.isdigit() else (0, 0, tok.lower())
        for tok in re.findall(r"\d+|[A-Za-z]+", version)
    )


def _is_pep440(version: str) -> bool:
    try:
        Version(version)
    except InvalidVersion:
        return False
    return True


_NUMERIC = re.compile(r"^\d+(?:\.\d+)*$")


def _numeric_key(version: str) -> tuple[int, ...]:
    return tuple(map(int, version.split(".")))


# Purely numeric versions compare as integer tuples first: apk-tools reads a leading zero as a
# fraction (2024.01.15 < 2024.1.2), but upstreams writing 01 mean a calendar month.
_KEYS: dict[str, Callable[[str], Any]] = {
    "numeric": _numeric_key,
    "pep440": Version,
    "semver": _semver_key,
    "loose": _loose_key,
}
_SCHEMES: dict[str, tuple[Callable[[str], bool], Comparator]] = {
    "numeric": (lambda v: _NUMERIC.match(v) is not None, _compare_by(_numeric_key)),
    "apk": (apk_version.is_valid, apk_version.compare),
    "pep440": (_is_pep440, _compare_by(Version)),
    "semver": (lambda v: _SEMVER.match(v) is not None, _compare_by(_semver_key)),
    "loose": (lambda v: True, _compare_by(_loose_key)),
}


def pick_scheme(versions: Sequence[str], *, prefer: Sequence[str] = ()) -> str:
    """The first scheme (``prefer`` first, then numeric, apk, pep440, semver, loose) valid for all."""
    order = [*prefer, *(s for s in _SCHEMES if s not in prefer)]
    for name in order:
        valid, _ = _SCHEMES[name]
        if all(valid(v) for v in versions):
            return name
    return "loose"


def comparator(scheme: str) -> Comparator:
    return _SCHEMES[scheme][1]


def sort_candidates(
    candidates: Sequence[Candidate], current: str | None = None, *, prefer: Sequence[str] = ()
) -> tuple[list[Candidate], str]:
    """Candidates oldest first, and the scheme used (the current version must fit it too)."""
    versions = [c.version for c in candidates] + ([current] if current else [])
    scheme = pick_scheme(versions, prefer=prefer)
    key = _KEYS.get(scheme)
    if key is not None:  # each version's key computed once, not once per comparison
        return sorted(candidates, key=lambda c: key(c.version)), scheme
    cmp = comparator(scheme)

    def by_version(x: Candidate, y: Candidate) -> int:
        return cmp(x.version, y.version)

    return sorted(candidates, key=functools.cmp_to_key(by_version)), scheme


def choose(
    candidates: Sequence[Candidate],
    current: str,
    *,
    sequential: bool = False,
    prefer: Sequence[str] = (),
) -> tuple[Candidate | None, Candidate | None, Candidate | None]:
    """(latest, next to move to, candidate equal to ``current``).

    ``next`` is the latest, or with ``sequential`` (melange ``require-sequential``) the oldest
    version newer than ``current``; it is None when nothing is newer.
    """
    if not candidates:
        return None, None, None
    ordered, scheme = sort_candidates(candidates, current, prefer=prefer)
    key = _KEYS.get(scheme)
    if key is not None:
        now = key(current)
        keyed = [(key(c.version), c) for c in ordered]
        newer = [c for k, c in keyed if k > now]
        same = next((c for k, c in keyed if k == now), None)
    else:
        cmp = comparator(scheme)
        newer = [c for c in ordered if cmp(c.version, current) > 0]
        same = next((c for c in ordered if cmp(c.version, current) == 0), None)
    latest = ordered[-1]
    if not newer:
        return latest, None, same
    return latest, (newer[0] if sequential else newer[-1]), same


def is_newer(candidate: str, current: str) -> bool:
    """Whether ``candidate`` is newer than ``current`` under the scheme both satisfy."""
    return comparator(pick_scheme([candidate, current]))(candidate, current) > 0
