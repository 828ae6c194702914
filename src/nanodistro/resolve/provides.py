"""The provider-matching rule: does a package's claim on a name satisfy a dependency atom?

A candidate claims a name either as itself (at its own version) or through a ``provides`` entry,
which may be versioned (``so:libc.so.6=1``) or virtual (unversioned). This is the one place that
decides whether such a claim meets an atom's constraint (``>=``, ``~``, ``><`` checksum pin, ...);
the solver and the repository consistency gate both use it so they cannot disagree.
"""

from __future__ import annotations

from nanodistro.formats.version import CHECKSUM, Dependency, match
from nanodistro.resolve.universe import Candidate

__all__ = ["provides"]


def provides(dep: Dependency, cand: Candidate, version: str | None) -> bool:
    """Does ``cand`` (claiming the name at ``version``) match ``dep``'s constraint?"""
    if dep.version is None:
        return True
    if dep.op == CHECKSUM:
        return cand.checksum == dep.version
    if version is None:  # a virtual (unversioned) provide satisfies only unversioned atoms
        return False
    return match(version, dep.op, dep.version)
