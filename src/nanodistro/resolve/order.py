"""Install order of a solved selection: apk-tools' changeset order (``generate_changeset``).

World atoms are visited by name, depth first; a package comes after its dependencies, and an
``install_if`` package right after the last of its conditions is placed. The order only depends
on which package owns each name, so it is computed after the search from the final state's
owners, separately from how the packages were chosen.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence

from nanodistro.formats.version import Dependency
from nanodistro.resolve.universe import Candidate, Universe

__all__ = ["install_order"]


def install_order(
    universe: Universe,
    world: Sequence[Dependency],
    owners: Mapping[str, Sequence[tuple[Candidate, str | None]]],
    selected: Sequence[Candidate],
) -> list[Candidate]:
    """apk-tools' changeset order: dependencies first, install_if after its conditions.

    ``world`` is the solver's (name-sorted) world, ``owners`` maps each name to the selected
    packages claiming it, ``selected`` lists the selected packages in selection order.
    """
    chosen = {name: claims[0][0] for name, claims in owners.items()}
    names_done: set[str] = set()
    pkgs_done: set[int] = set()
    out: list[Candidate] = []
    selected_ids = {id(c) for c in selected}

    def gen_name(name: str) -> None:
        if name in names_done:
            return
        names_done.add(name)
        cand = chosen.get(name)
        if cand is None or id(cand) in pkgs_done:
            return
        pkgs_done.add(id(cand))
        names_done.add(cand.name)
        for prov in cand.provides:
            names_done.add(prov.name)
        for dep in cand.depends:
            gen_name(dep.name)
        out.append(cand)
        for iif in universe.rinstall_if.get(cand.name, ()):
            check_iif(iif)

    def check_iif(cand: Candidate) -> None:
        if id(cand) not in selected_ids or cand.name in names_done:
            return
        for dep in cand.install_if:
            if dep.conflict:
                continue
            if dep.name not in names_done:
                return
        gen_name(cand.name)

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10000))
    try:
        for dep in world:
            if not dep.conflict:
                gen_name(dep.name)
        for cand in selected:  # anything not reached from the world (defensive)
            gen_name(cand.name)
    finally:
        sys.setrecursionlimit(limit)
    return out
