"""The solver's search state: requirements, selections and failures, copied at each choice.

``_Req`` is one dependency atom with who asked for it and which repository tags it may use,
``_State`` is everything decided so far (selected packages, which package owns each name, open
requirements and conflicts, watched ``install_if`` packages); the search snapshots it with
``copy()`` before each choice so it can backtrack. ``_Fail`` is the internal dead-end signal the
search catches; only the solver turns the first one into a ``ResolveError``.
"""

from __future__ import annotations

from nanodistro.formats.version import Dependency
from nanodistro.resolve.universe import Candidate

__all__ = ["_Fail", "_Req", "_State"]


class _Req:
    """One requirement. A plain class (was a frozen dataclass): the solver makes thousands and
    compares none, and generating a dataclass costs milliseconds of the command's start-up."""

    __slots__ = ("allowed", "dep", "preferred", "requirer")

    def __init__(
        self,
        dep: Dependency,
        requirer: Candidate | None,  # None: the world
        allowed: frozenset[str | None],
        preferred: frozenset[str | None] | None,  # world atoms only
    ) -> None:
        self.dep = dep
        self.requirer = requirer
        self.allowed = allowed
        self.preferred = preferred

    def __repr__(self) -> str:
        return f"_Req({self.dep!s}, {self.requirer!r})"


class _Fail(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _State:
    __slots__ = (
        "allowed",
        "conflicts",
        "order",
        "owners",
        "parent",
        "pending",
        "rejected",
        "reqs",
        "selected",
        "watch",
    )

    def __init__(self) -> None:
        self.selected: dict[str, Candidate] = {}
        self.order: list[Candidate] = []
        # Tuples, replaced rather than appended to: a snapshot (copy) shares them, so taking
        # one copies three dicts, not every list in them (it was a third of a 337-package solve).
        self.owners: dict[str, tuple[tuple[Candidate, str | None], ...]] = {}
        self.reqs: dict[str, tuple[_Req, ...]] = {}
        self.conflicts: dict[str, tuple[_Req, ...]] = {}
        self.pending: set[str] = set()
        self.allowed: dict[int, frozenset[str | None]] = {}
        self.parent: dict[int, _Req] = {}
        self.rejected: set[str] = set()
        self.watch: dict[int, Candidate] = {}

    def copy(self) -> _State:
        new = _State.__new__(_State)
        new.selected = dict(self.selected)
        new.order = list(self.order)
        new.owners = self.owners.copy()
        new.reqs = self.reqs.copy()
        new.conflicts = self.conflicts.copy()
        new.pending = set(self.pending)
        new.allowed = dict(self.allowed)
        new.parent = dict(self.parent)
        new.rejected = set(self.rejected)
        new.watch = dict(self.watch)
        return new
