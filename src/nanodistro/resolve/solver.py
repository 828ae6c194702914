"""Choose the packages that satisfy a world (list of dependency atoms) and order them.

Selection follows apk-tools' solver (``src/solver.c``): names are decided one at a time, a name
whose only remaining option is known and whose dependents are all decided first, then triggered
``install_if`` packages, then the remaining names deepest-dependent first; a name's providers are
ranked as ``compare_providers`` ranks them (preferred pinning, newest version of the requested
name, newest version of the package, ``provider_priority``, first repository). Unlike apk-tools a
dead end is not final: the search backtracks to the last choice with alternatives, so constraints
that only meet further down (``a`` needs ``d>1.5``, its dependency ``b`` needs ``d<2``) still
find the older ``a`` that works.

The install order is apk-tools' changeset order (``generate_changeset``): world atoms by name,
depth first, a package after its dependencies, an ``install_if`` package right after the last
of its conditions.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence

from nanodistro.errors import ResolveError, VersionError
from nanodistro.formats.version import Dependency, compare, is_valid
from nanodistro.resolve.order import install_order
from nanodistro.resolve.provides import provides
from nanodistro.resolve.resolution import Resolution, ResolvedPackage, parse_world
from nanodistro.resolve.state import _Fail, _Req, _State
from nanodistro.resolve.universe import Candidate, RepositoryRef, Universe

# The data types, the provider rule and the ordering live in their own modules; they are
# re-exported here so existing ``from nanodistro.resolve.solver import ...`` keeps working.
__all__ = [
    "DEFAULT_BUDGET",
    "Resolution",
    "ResolvedPackage",
    "install_order",
    "parse_world",
    "provides",
    "solve",
]

_NONE: frozenset[str] = frozenset()

#: Selections tried before giving up on a world (each backtrack costs one).
DEFAULT_BUDGET = 20000


class _Solver:
    def __init__(self, universe: Universe, world: Sequence[Dependency]) -> None:
        self.u = universe
        self.world = sorted(world, key=lambda d: d.name)
        self.default_tags: frozenset[str | None] = frozenset({None})
        self._seen: set[str] = set()
        self._rdepends: dict[str, set[str]] = {}
        self._chain: dict[str, int] = {}
        self._priority: dict[str, int] = {}
        self._satisfiable: dict[Dependency, bool] = {}
        self._alive: dict[int, bool] = {}
        self._checked: set[int] = set()
        self._ranked: dict[
            tuple[str, frozenset[str | None]], list[tuple[Candidate, str | None]]
        ] = {}
        self._discover()
        # Every name the search can meet, numbered in the order next_step visits pending names
        # (priority, then name): ordering the pending names at each step is then one sort of
        # small ints instead of two sorts of strings (it was a tenth of a 337-package solve).
        ranked = sorted(self._seen, key=lambda n: (self.name_priority(n), n))
        self._visit_rank = {name: number for number, name in enumerate(ranked)}
        # Reverse dependencies among the reachable names, checked as one C-level superset test
        # of the owners' keys (reverse_deps_done runs for pending names at every step).
        seen = self._seen
        self._rdepends = {
            name: {n for n in names if n in seen} for name, names in self._rdepends.items()
        }

    # -- static facts ----------------------------------------------------------------------------

    def _discover(self) -> None:
        """Names reachable from the world through any provider's depends and install_if."""
        stack = [d.name for d in self.world]
        seen, rdepends, providers = self._seen, self._rdepends, self.u.providers
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            for cand, _ in providers.get(name, ()):
                for dep in cand.depends:
                    rdepends.setdefault(dep.name, set()).add(cand.name)
                    if dep.name not in seen:
                        stack.append(dep.name)
                if cand.name not in seen:
                    stack.append(cand.name)
            for cand in self.u.rinstall_if.get(name, ()):
                if cand.name not in seen:
                    stack.append(cand.name)

    def max_dep_chain(self, name: str) -> int:
        known = self._chain.get(name)
        if known is not None:
            return known
        self._chain[name] = 0  # cycle guard
        best = 0
        for cand, _ in self.u.providers.get(name, ()):
            for dep in cand.depends:
                if not dep.conflict:
                    best = max(best, self.max_dep_chain(dep.name) + 1)
        self._chain[name] = best
        return best

    def name_priority(self, name: str) -> int:
        # A fact of the universe, asked for every pending name at every step: remembered.
        known = self._priority.get(name)
        if known is None:
            if name in self.u.real_names:
                known = 0
            elif any(v is not None for _, v in self.u.providers.get(name, ())):
                known = 1
            else:
                known = 2
            self._priority[name] = known
        return known

    def usable(self, cand: Candidate) -> bool:
        if cand.broken is None and id(cand) not in self._checked:
            self._checked.add(id(cand))
            if not is_valid(cand.version, legacy=True):
                cand.broken = f"invalid version {cand.version!r}"
            cand.depends  # noqa: B018 - parsing may mark the package broken
            cand.provides  # noqa: B018
        return cand.broken is None

    def satisfiable(self, dep: Dependency) -> bool:
        """Could anything ever provide ``dep``, counting only packages whose own dependencies
        could be met too? (apk-tools disqualifies such packages up front; without this the
        search would try every version of every package above a hole.)"""
        known = self._satisfiable.get(dep)
        if known is not None:
            return known
        self._satisfiable[dep] = True  # optimistic inside dependency cycles
        known = any(
            provides(dep, cand, ver) and self.alive(cand)
            for cand, ver in self.u.providers.get(dep.name, ())
        )
        self._satisfiable[dep] = known
        return known

    def alive(self, cand: Candidate) -> bool:
        known = self._alive.get(id(cand))
        if known is not None:
            return known
        self._alive[id(cand)] = True  # cycle guard
        known = self.usable(cand) and all(
            dep.conflict or self.satisfiable(dep) for dep in cand.depends
        )
        self._alive[id(cand)] = known
        return known

    # -- describing ------------------------------------------------------------------------------

    def chain(self, state: _State, req: _Req) -> str:
        """``b-1[d<2.0] (world → a-3 → b-1)``: the atom, who asked, and how it got there."""
        path: list[str] = []
        requirer = req.requirer
        seen: set[int] = set()
        while requirer is not None and id(requirer) not in seen:
            seen.add(id(requirer))
            path.append(f"{requirer.name}-{requirer.version}")
            parent = state.parent.get(id(requirer))
            requirer = parent.requirer if parent is not None else None
        text = f"{self.who(req)}[{req.dep}]"
        if len(path) > 1:
            text += " (" + " → ".join(["world", *reversed(path)]) + ")"
        return text

    def who(self, req: _Req) -> str:
        return "world" if req.requirer is None else f"{req.requirer.name}-{req.requirer.version}"

    def available(self, name: str) -> str:
        provs = self.u.providers.get(name, [])
        if not provs:
            return "no package has or provides this name"
        items = []
        for cand, ver in provs[:12]:
            text = f"{cand.name}-{cand.version}"
            if cand.name != name:
                text += f" (provides {name}={ver})" if ver else f" (provides {name})"
            if cand.broken:
                text += f" [uninstallable: {cand.broken}]"
            items.append(text)
        more = f" and {len(provs) - 12} more" if len(provs) > 12 else ""
        return "available: " + ", ".join(items) + more

    # -- state changes ---------------------------------------------------------------------------

    def require(self, state: _State, req: _Req) -> None:
        dep = req.dep
        if dep.conflict:
            conflicts = state.conflicts
            conflicts[dep.name] = (*conflicts.get(dep.name, ()), req)
            for cand, ver in state.owners.get(dep.name, ()):
                if cand is not req.requirer and provides(dep, cand, ver):
                    raise _Fail(
                        f"{cand.name}-{cand.version} conflicts with {self.who(req)}[{dep}]"
                        f" (needed by {self.chain(state, state.parent[id(cand)])})"
                    )
            return
        reqs = state.reqs
        reqs[dep.name] = (*reqs.get(dep.name, ()), req)
        owners = state.owners.get(dep.name)
        if owners:
            if not any(provides(dep, c, v) for c, v in owners):
                c, v = owners[0]
                raise _Fail(
                    f"{self.chain(state, req)}: {dep.name} is already "
                    f"{c.name}-{c.version}"
                    + (f" (provides {dep.name}={v})" if c.name != dep.name else "")
                )
            return
        state.pending.add(dep.name)

    def viable(self, state: _State, name: str, cand: Candidate, ver: str | None) -> str | None:
        """Why ``cand`` (claiming ``name`` at ``ver``) cannot be selected now, or None."""
        if not self.usable(cand):
            return f"uninstallable: {cand.broken}"
        chosen = state.selected.get(cand.name)
        if chosen is not None and chosen is not cand:
            return f"{cand.name}-{chosen.version} is already selected"
        for req in state.reqs.get(name, ()):
            if not provides(req.dep, cand, ver):
                return f"does not satisfy {self.who(req)}[{req.dep}]"
        claims = cand.claims()
        seen_claims: dict[str, str | None] = {}
        for cname, cver in claims:
            if cname in seen_claims and not (cver is None and seen_claims[cname] is None):
                return f"provides {cname} twice"
            seen_claims[cname] = cver
            for other, over in state.owners.get(cname, ()):
                if other is not cand and not (cver is None and over is None):
                    return f"{cname} is already provided by {other.name}-{other.version}"
            for req in state.conflicts.get(cname, ()):
                if req.requirer is not cand and provides(req.dep, cand, cver):
                    return f"conflicts with {self.who(req)}[{req.dep}]"
        for dep in cand.depends:
            owners = state.owners.get(dep.name)
            if dep.conflict:
                if owners and any(c is not cand and provides(dep, c, v) for c, v in owners):
                    return f"its [{dep}] conflicts with {owners[0][0].name}"
                continue
            if owners:
                if not any(provides(dep, c, v) for c, v in owners):
                    c = owners[0][0]
                    return f"needs {dep} but {dep.name} is {c.name}-{c.version}"
            elif not self.satisfiable(dep):
                if not any(provides(dep, c, v) for c, v in self.u.providers.get(dep.name, ())):
                    return f"needs {dep}, which nothing provides"
                return f"needs {dep}, which nothing installable provides"
        return None

    def select(
        self,
        state: _State,
        name: str,
        cand: Candidate,
        allowed: frozenset[str | None],
        parent: _Req | None,
    ) -> None:
        state.selected[cand.name] = cand
        state.order.append(cand)
        state.allowed[id(cand)] = allowed
        if parent is not None:
            state.parent[id(cand)] = parent
        owners = state.owners
        for cname, cver in cand.claims():
            owners[cname] = (*owners.get(cname, ()), (cand, cver))
            for req in state.reqs.get(cname, ()):
                if not provides(req.dep, cand, cver) and not any(
                    provides(req.dep, c, v) for c, v in state.owners[cname]
                ):
                    raise _Fail(
                        f"{self.chain(state, req)}: {cname} is provided by "
                        f"{cand.name}-{cand.version}" + (f" as {cname}={cver}" if cver else "")
                    )
            state.pending.discard(cname)
            for watcher in self.u.rinstall_if.get(cname, ()):
                state.watch[id(watcher)] = watcher
        for dep in cand.depends:
            self.require(state, _Req(dep, cand, allowed, None))

    # -- choosing --------------------------------------------------------------------------------

    def tag_info(
        self, state: _State, name: str, reqs: Sequence[_Req]
    ) -> tuple[frozenset[str | None], frozenset[str | None]]:
        allowed: set[str | None] = {None}
        preferred: set[str | None] = set()
        for req in reqs:
            allowed |= req.allowed
            if req.preferred is not None:
                preferred |= req.preferred
        return frozenset(allowed), frozenset(preferred or {None})

    def rank(
        self, options: list[tuple[Candidate, str | None]], preferred: frozenset[str | None]
    ) -> list[tuple[Candidate, str | None]]:
        tags_of = self.u.tags_of

        def better(a: tuple[Candidate, str | None], b: tuple[Candidate, str | None]) -> int:
            ca, va = a
            cb, vb = b
            r = bool(tags_of(ca) & preferred) - bool(tags_of(cb) & preferred)
            if r:
                return r
            if va is not None and vb is not None:
                r = compare(va, vb)
                if r:
                    return r
            if ca.name == cb.name:
                r = compare(ca.version, cb.version)
                if r:
                    return r
            r = (ca.info.provider_priority or 0) - (cb.info.provider_priority or 0)
            if r:
                return r
            r = min(cb.repos) - min(ca.repos)
            if r:
                return r
            # Determinism for otherwise equal choices: name, then identity.
            if ca.name != cb.name:
                return -1 if ca.name > cb.name else 1
            return -1 if (ca.checksum or "") > (cb.checksum or "") else 1

        return sorted(options, key=functools.cmp_to_key(better), reverse=True)

    def options_for(
        self, state: _State, name: str, extra_allowed: frozenset[str | None] = frozenset()
    ) -> tuple[list[tuple[Candidate, str | None]], list[str], int, frozenset[str | None]]:
        """(ranked selectable options, rejection notes, count apk would call options, allowed)."""
        reqs = state.reqs.get(name, ())
        allowed, preferred = self.tag_info(state, name, reqs)
        allowed |= extra_allowed
        ok: list[tuple[Candidate, str | None]] = []
        notes: list[str] = []
        count = 0
        tags_of = self.u.tags_of
        # The preference order of a name's providers does not depend on the state: rank once.
        key = (name, preferred)
        ranked = self._ranked.get(key)
        if ranked is None:
            ranked = self.rank(list(self.u.providers.get(name, ())), preferred)
            self._ranked[key] = ranked
        for cand, ver in ranked:
            why = self.viable(state, name, cand, ver)
            label = f"{cand.name}-{cand.version}"
            if why is not None:
                notes.append(f"{label}: {why}")
                continue
            count += 1
            if not tags_of(cand) & allowed:
                tags = ", ".join(f"@{t}" for t in sorted(t for t in tags_of(cand) if t))
                notes.append(f"{label}: only in {tags} (not pinned)")
                count += 1  # apk: a tag that is not allowed counts as having options
                continue
            if (
                ver is None
                and cand.name != name
                and not cand.info.provider_priority
                and cand.name not in state.pending
            ):
                notes.append(f"{label}: provides {name} without version or provider_priority")
                continue
            ok.append((cand, ver))
        return ok, notes, count, allowed

    def triggered(self, state: _State) -> list[Candidate]:
        """``install_if`` packages whose conditions are all decided and met."""
        out = []
        done: list[int] = []
        for key, cand in state.watch.items():
            if cand.name in state.selected or cand.name in state.rejected:
                done.append(key)
                continue
            for dep in cand.install_if:
                owners = state.owners.get(dep.name)
                if dep.conflict:
                    if dep.name in state.pending:
                        break  # undecided yet: look again later
                    if owners and any(provides(dep, c, v) for c, v in owners):
                        done.append(key)
                        break
                elif not owners or not any(provides(dep, c, v) for c, v in owners):
                    # Only a new owner of a condition name can change this; select() re-adds
                    # the package to the watch list then.
                    done.append(key)
                    break
            else:
                out.append(cand)
        for key in done:
            del state.watch[key]
        return out

    def reverse_deps_done(self, state: _State, name: str) -> bool:
        return state.owners.keys() >= self._rdepends.get(name, _NONE)

    def no_option_error(self, state: _State, name: str, notes: list[str]) -> _Fail:
        reqs = state.reqs.get(name, ())
        needed = "; ".join(self.chain(state, r) for r in reqs[:4]) or name
        if name not in self.u.providers:
            return _Fail(f"{name} (no such package): required by {needed}")
        provs = self.u.providers[name]
        if all(ver is None and c.name != name for c, ver in provs):
            names = ", ".join(sorted({c.name for c, _ in provs}))
            detail = "; ".join(notes) if len(notes) <= 6 else "; ".join(notes[:6]) + "; ..."
            return _Fail(
                f"{name} (virtual): required by {needed}; provided by {names} — select one of "
                f"them explicitly ({detail})"
            )
        detail = "; ".join(notes) if len(notes) <= 8 else "; ".join(notes[:8]) + "; ..."
        return _Fail(f"no candidate for {name}, required by {needed} ({detail})")

    def next_step(
        self, state: _State
    ) -> tuple[str, list[tuple[Candidate, str | None]], bool, frozenset[str | None]] | None:
        """The next name to decide, its ranked options, whether it is install_if, allowed tags."""
        # Real package names before provided ones: a virtual name is often satisfied on the way.
        # Options are only computed where needed: this loop is the solver's hot path.
        try:
            ordered = sorted(state.pending, key=self._visit_rank.__getitem__)
        except KeyError:  # a name _discover did not reach: order by (priority, name) here
            priority = self._priority
            for name in state.pending:
                if name not in priority:
                    self.name_priority(name)
            # By name, then stably by priority (C-level keys).
            ordered = sorted(sorted(state.pending), key=priority.__getitem__)
        for name in ordered:
            if not self.reverse_deps_done(state, name):
                continue
            options, notes, count, allowed = self.options_for(state, name)
            if not options:
                raise self.no_option_error(state, name, notes)
            if count == 1:
                return name, options, False, allowed
        iif = self.triggered(state)
        if iif:
            iif.sort(key=lambda c: (-self.max_dep_chain(c.name), c.name))
            for cand in iif:
                inherited: set[str | None] = {None}
                for dep in cand.install_if:
                    for owner, _ in state.owners.get(dep.name, ()):
                        inherited |= state.allowed.get(id(owner), frozenset())
                options, _, _, _ = self.options_for(state, cand.name, frozenset(inherited))
                options = [(c, v) for c, v in options if c is cand]
                if not options:
                    state.rejected.add(cand.name)
                    continue
                return cand.name, options, True, frozenset(inherited)
        if not state.pending:
            return None
        name = min(state.pending, key=lambda n: (self.name_priority(n), -self.max_dep_chain(n), n))
        options, notes, _, allowed = self.options_for(state, name)
        if not options:
            raise self.no_option_error(state, name, notes)
        return name, options, False, allowed

    # -- search ----------------------------------------------------------------------------------

    def run(self, budget: int) -> _State:
        state = _State()
        first: _Fail | None = None
        stack: list[
            tuple[
                _State, str, list[tuple[Candidate, str | None] | None], bool, frozenset[str | None]
            ]
        ] = []
        forced: tuple[str, tuple[Candidate, str | None] | None, frozenset[str | None]] | None
        forced = None
        try:
            for dep in self.world:
                world_allowed: frozenset[str | None] = self.default_tags
                preferred: frozenset[str | None] = self.default_tags
                if dep.tag is not None:
                    world_allowed, preferred = frozenset({None, dep.tag}), frozenset({dep.tag})
                self.require(state, _Req(dep, None, world_allowed, preferred))
        except _Fail as failure:
            raise ResolveError(f"unable to select packages: {failure.message}") from None
        steps = 0
        while True:
            steps += 1
            if steps > budget:
                message = first.message if first else "search budget exhausted"
                raise ResolveError(f"unable to select packages: {message}")
            try:
                if forced is not None:
                    name, choice, allowed = forced
                    forced = None
                    self.apply(state, name, choice, allowed)
                step = self.next_step(state)
                if step is None:
                    return state
                name, options, is_iif, allowed = step
                alternatives: list[tuple[Candidate, str | None] | None] = list(options[1:])
                if is_iif:
                    alternatives.append(None)
                if alternatives:
                    stack.append((state.copy(), name, alternatives, is_iif, allowed))
                self.apply(state, name, options[0], allowed)
            except _Fail as failure:
                if first is None:
                    first = failure
                while stack:
                    snap, name, alternatives, is_iif, allowed = stack.pop()
                    if alternatives:
                        if len(alternatives) > 1:
                            stack.append((snap.copy(), name, alternatives[1:], is_iif, allowed))
                        state = snap
                        forced = (name, alternatives[0], allowed)
                        break
                else:
                    raise ResolveError(f"unable to select packages: {first.message}") from None

    def apply(
        self,
        state: _State,
        name: str,
        choice: tuple[Candidate, str | None] | None,
        allowed: frozenset[str | None],
    ) -> None:
        if choice is None:
            state.rejected.add(name)
            return
        cand, _ = choice
        reqs = state.reqs.get(name)
        self.select(state, name, cand, allowed, reqs[0] if reqs else None)

    def display_tag(self, state: _State, cand: Candidate) -> tuple[str | None, RepositoryRef]:
        allowed = state.allowed.get(id(cand), self.default_tags)
        tags = self.u.tags_of(cand)
        if None in tags:
            return None, self.u.repository_of(cand, None)
        for repo in self.u.repositories:
            if repo.tag in allowed and repo.tag in tags:
                return repo.tag, self.u.repository_of(cand, repo.tag)
        return None, self.u.repository_of(cand)


def solve(
    universe: Universe,
    world: Iterable[str | Dependency],
    *,
    drop_broken_world: bool = False,
    budget: int = DEFAULT_BUDGET,
) -> Resolution:
    """Resolve ``world`` against ``universe``; ResolveError explains an unsatisfiable world.

    With ``drop_broken_world`` (apk ``--force-broken-world``), world atoms that cannot be
    satisfied even on their own are left out and reported in ``Resolution.dropped``.
    """
    try:
        deps = parse_world(world)
    except VersionError as error:
        raise ResolveError(f"invalid world dependency: {error.message}") from None
    dropped: list[Dependency] = []
    if drop_broken_world:
        try:
            return _solve(universe, deps, budget)
        except ResolveError:
            kept = []
            for dep in deps:
                try:
                    _solve(universe, [dep], budget)
                    kept.append(dep)
                except ResolveError:
                    dropped.append(dep)
            deps = kept
    resolution = _solve(universe, deps, budget)
    resolution.dropped = dropped
    return resolution


def _solve(universe: Universe, deps: list[Dependency], budget: int) -> Resolution:
    solver = _Solver(universe, deps)
    state = solver.run(budget)
    packages = []
    for cand in install_order(universe, solver.world, state.owners, state.order):
        tag, repo = solver.display_tag(state, cand)
        packages.append(ResolvedPackage(cand, repo, tag))
    return Resolution(packages, list(deps))
