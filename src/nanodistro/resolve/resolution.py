"""What a resolution is: the chosen packages in install order, and the world it answers.

``ResolvedPackage`` pairs a candidate with the repository (and ``@tag``) it is installed from,
``Resolution`` is the solver's result (packages in apk-tools' changeset order, the world atoms,
atoms dropped under ``--force-broken-world``), and ``parse_world`` turns world strings into
dependency atoms. Kept apart from the search so callers can use these types without the solver.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from nanodistro.formats.version import Dependency, parse_dependency
from nanodistro.resolve.universe import Candidate, RepositoryRef

__all__ = ["Resolution", "ResolvedPackage", "parse_world"]


@dataclass(frozen=True)
class ResolvedPackage:
    candidate: Candidate
    repository: RepositoryRef
    tag: str | None = None

    @property
    def name(self) -> str:
        return self.candidate.name

    @property
    def version(self) -> str:
        return self.candidate.version

    @property
    def checksum(self) -> str | None:
        return self.candidate.checksum

    @property
    def display_name(self) -> str:
        """``name`` or ``name@tag`` as ``apk add`` prints it."""
        return f"{self.name}@{self.tag}" if self.tag else self.name


@dataclass
class Resolution:
    packages: list[ResolvedPackage]
    world: list[Dependency]
    #: World atoms left out because they could not be satisfied (``drop_broken_world``).
    dropped: list[Dependency] = field(default_factory=list)

    def simulate_lines(self) -> list[str]:
        """``(1/N) Installing name (version)`` lines, as ``apk add --simulate`` prints them."""
        total = len(self.packages)
        return [
            f"({i}/{total}) Installing {p.display_name} ({p.version})"
            for i, p in enumerate(self.packages, start=1)
        ]


def parse_world(atoms: Iterable[str | Dependency], *, where: str = "world") -> list[Dependency]:
    out: list[Dependency] = []
    for atom in atoms:
        if isinstance(atom, Dependency):
            out.append(atom)
            continue
        for word in atom.split():
            out.append(parse_dependency(word, where=where))
    return out
