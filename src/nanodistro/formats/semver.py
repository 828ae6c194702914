"""Semantic Versioning 2.0.0 precedence (semver.org §11), as npm and Go order versions.

Lenient where those ecosystems are: a leading ``v`` (Go's ``v1.2.3``), missing minor/patch
(``1.2`` = ``1.2.0``), build metadata (``+incompatible``) ignored. Go pseudo-versions
(``v0.0.0-20210101000000-abcdef123456``) are prereleases and order correctly as such.
"""

from __future__ import annotations

import re

from nanodistro.errors import VersionError

__all__ = ["compare", "parse"]

_SEMVER = re.compile(
    r"^v?(?P<major>0|[1-9]\d*)(?:\.(?P<minor>\d+))?(?:\.(?P<patch>\d+))?"
    r"(?:-(?P<pre>[0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$"
)

Key = tuple[int, int, int, tuple[tuple[int, int | str], ...] | None]


def parse(version: str, *, where: str = "<semver>") -> Key:
    """A sort key; ``VersionError`` for text that is not a (lenient) semantic version."""
    match = _SEMVER.match(version.strip())
    if match is None:
        raise VersionError(f"not a semantic version: {version!r}", where=where)
    pre: tuple[tuple[int, int | str], ...] | None = None
    if match["pre"] is not None:
        # Numeric identifiers sort below alphanumeric ones and numerically among themselves.
        pre = tuple(
            (0, int(part)) if part.isdigit() else (1, part) for part in match["pre"].split(".")
        )
    return (int(match["major"]), int(match["minor"] or 0), int(match["patch"] or 0), pre)


def _cmp(a: object, b: object) -> int:
    return (a > b) - (a < b)  # type: ignore[operator]


def compare(a: str, b: str, *, where: str = "<semver>") -> int:
    """-1, 0 or 1 as ``a`` sorts before, with or after ``b``."""
    ka, kb = parse(a, where=where), parse(b, where=where)
    if ka[:3] != kb[:3]:
        return _cmp(ka[:3], kb[:3])
    pa, pb = ka[3], kb[3]
    if pa is None or pb is None:  # a release sorts above its prereleases
        return 0 if pa is pb else (1 if pa is None else -1)
    for x, y in zip(pa, pb, strict=False):
        if x != y:
            if x[0] != y[0]:
                return _cmp(x[0], y[0])
            return _cmp(x[1], y[1])
    return _cmp(len(pa), len(pb))
