"""The dependency graph over a recipe set: build order, reverse closure, cycles.

Edges run from a dependency recipe to the recipe that needs it:
- build-time: a recipe's ``environment.contents.packages`` (wolfictl pkg/dag/graph.go);
- runtime: its packages' ``dependencies.runtime``, including ``so:``/``cmd:``/``pc:`` names that
  another recipe's package declares in ``dependencies.provides``.
A name resolves to the package of that name if one exists, else to every package providing it
with the highest ``provider-priority``. Names nothing in the set provides are external (the
distribution's bootstrap or an upstream repository) and create no edge. A recipe's dependency on
its own packages (bootstrapping) creates no edge either.

Build edges that would close a cycle are satisfied by the published package (``bootstrap.py``):
the build order uses the edges left after those cuts, ``build_deps`` keeps them all.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from nanodistro.errors import GraphError
from nanodistro.graph.bootstrap import BootstrapEdge, PublishedIndex, cached_cuts
from nanodistro.graph.corpus import Corpus, ImageNode, RecipeNode
from nanodistro.graph.impact import Impact, impact

if TYPE_CHECKING:
    from _typeshed import SupportsRichComparison

NodeT = TypeVar("NodeT", bound="SupportsRichComparison")


@dataclass
class BuildOrder:
    """Recipes in waves (each wave depends only on earlier ones), the build edges cut because
    the published package satisfies them, and the cycles no cut could break."""

    waves: list[list[str]]
    cycles: list[list[str]]
    blocked: list[str] = field(default_factory=list)  # depend on a cycle, so not ordered
    bootstrap: list[BootstrapEdge] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "waves": self.waves,
            "bootstrap_edges": [edge.to_json() for edge in self.bootstrap],
            "cycles": self.cycles,
            "blocked": self.blocked,
        }


def strongly_connected(
    nodes: Iterable[NodeT], edges: Mapping[NodeT, Iterable[NodeT]]
) -> list[list[NodeT]]:
    """Tarjan's SCCs, iteratively (the corpus is deep enough to overflow recursion); each
    component comes after every component it has an edge to, members and edges sorted."""
    index: dict[NodeT, int] = {}
    low: dict[NodeT, int] = {}
    on_stack: set[NodeT] = set()
    stack: list[NodeT] = []
    result: list[list[NodeT]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work: list[tuple[NodeT, Any]] = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                result.append(sorted(component))
    return result


class DependencyGraph:
    """Recipes and images with build-time and runtime edges (dependency -> dependent)."""

    def __init__(
        self,
        recipes: Sequence[RecipeNode],
        images: Sequence[ImageNode] = (),
        *,
        published: PublishedIndex | None = None,
        bootstrap: bool = True,
        cache_dir: Path | None = None,
    ) -> None:
        # ``published``: the repository whose packages may satisfy a cycle-closing build edge
        # (None: assume every package of the set is published); ``bootstrap=False`` cuts none.
        self.published = published
        self.bootstrap = bootstrap
        self.cache_dir = cache_dir  # where the bootstrap cuts are remembered (None: not)
        self.recipes: dict[str, RecipeNode] = {}
        for recipe in recipes:
            if recipe.name in self.recipes:
                raise GraphError(
                    f"two recipes are named {recipe.name!r}: {self.recipes[recipe.name].path} "
                    f"and {recipe.path}"
                )
            self.recipes[recipe.name] = recipe
        self.images = list(images)
        self.package_recipe: dict[str, str] = {}
        self.package_runtime: dict[str, tuple[str, ...]] = {}
        virtual: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for recipe in self.recipes.values():
            for package in recipe.packages:
                self.package_recipe[package.name] = recipe.name
                self.package_runtime[package.name] = package.runtime
                for provided in package.provides:
                    virtual[provided].append((package.provider_priority, package.name))
        self.virtual: dict[str, list[str]] = {}
        for name, offers in virtual.items():
            best = max(priority for priority, _ in offers)
            self.virtual[name] = sorted({p for priority, p in offers if priority == best})

        self.build_deps: dict[str, set[str]] = {name: set() for name in self.recipes}
        self.runtime_deps: dict[str, set[str]] = {name: set() for name in self.recipes}
        self.external: dict[str, set[str]] = defaultdict(set)
        # recipe -> [(dependency recipe, names written)], in the order the recipe lists them
        self.build_edges: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
        self.self_deps: dict[str, tuple[str, ...]] = {}  # recipe -> its own packages it builds with
        self._owners: dict[str, tuple[str, ...]] = {}  # name -> owning recipes (memo)
        for recipe in self.recipes.values():
            by_target: dict[str, list[str]] = {}
            for dep in recipe.build:
                for owner in self._link(recipe.name, dep, self.build_deps):
                    by_target.setdefault(owner, []).append(dep)
            self.build_edges[recipe.name] = [(t, tuple(n)) for t, n in by_target.items()]
            own = [d for d in recipe.build if recipe.name in self._owners.get(d, ())]
            if own:  # the toolchain builds itself (go with go): its previous version
                self.self_deps[recipe.name] = tuple(own)
            for package in recipe.packages:
                for dep in package.runtime:
                    self._link(recipe.name, dep, self.runtime_deps)
        self.build_dependents = self._reverse(self.build_deps)
        self.runtime_dependents = self._reverse(self.runtime_deps)

    # --- construction helpers -----------------------------------------------------------------

    def resolve(self, name: str) -> list[str]:
        """Packages in the set that satisfy dependency name ``name`` (may be empty)."""
        if name in self.package_recipe:
            return [name]
        return self.virtual.get(name, [])

    def _link(self, recipe: str, dep: str, edges: dict[str, set[str]]) -> list[str]:
        owners = self._owners.get(dep)
        if owners is None:
            packages = self.resolve(dep)
            owners = self._owners[dep] = tuple(
                dict.fromkeys(self.package_recipe[p] for p in packages)
            )
        if not owners:
            self.external[dep].add(recipe)
            return []
        linked = [owner for owner in owners if owner != recipe]
        edges[recipe].update(linked)
        return linked

    @staticmethod
    def _reverse(edges: dict[str, set[str]]) -> dict[str, set[str]]:
        reverse: dict[str, set[str]] = {name: set() for name in edges}
        for node, deps in edges.items():
            for dep in deps:
                reverse[dep].add(node)
        return reverse

    # --- queries ------------------------------------------------------------------------------

    def cycles(self) -> list[list[str]]:
        """Build-time dependency cycles (before any cut), each as its sorted member list."""
        components = strongly_connected(sorted(self.recipes), self.build_deps)
        return sorted(c for c in components if len(c) > 1)

    @cached_property
    def bootstrap_edges(self) -> list[BootstrapEdge]:
        """Build edges cut because the published package satisfies them (``bootstrap.py``)."""
        if not self.bootstrap:
            return []
        own = [
            BootstrapEdge(
                recipe=name,
                target=name,
                names=names,
                cycle=(name,),
                published=(
                    "assumed"
                    if self.published is None
                    else "repository"
                    if all(self.published.has(n) for n in names)
                    else "missing"
                ),
            )
            for name, names in sorted(self.self_deps.items())
        ]
        return own + cached_cuts(self.cycles(), self.build_edges, self.published, self.cache_dir)

    @cached_property
    def order_deps(self) -> dict[str, set[str]]:
        """The build edges that order builds: ``build_deps`` less the bootstrap edges."""
        deps = {name: set(targets) for name, targets in self.build_deps.items()}
        for edge in self.bootstrap_edges:
            deps[edge.recipe].discard(edge.target)
        return deps

    def remaining_cycles(self) -> list[list[str]]:
        """Cycles no bootstrap edge breaks (a dependency in them is not published)."""
        components = strongly_connected(sorted(self.recipes), self.order_deps)
        return sorted(c for c in components if len(c) > 1)

    def order(self, subset: Iterable[str] | None = None) -> BuildOrder:
        """Build order in parallel waves (Kahn's algorithm over the build edges left after the
        bootstrap cuts).

        Members of a cycle no cut breaks, and recipes depending on them, are reported rather
        than ordered.
        """
        nodes = set(self.recipes) if subset is None else set(subset)
        cycles = [c for c in self.remaining_cycles() if set(c) & nodes]
        deps_of = self.order_deps
        remaining = {n: {d for d in deps_of[n] if d in nodes} for n in nodes}
        waves: list[list[str]] = []
        ready = sorted(n for n, deps in remaining.items() if not deps)
        while ready:
            waves.append(ready)
            for node in ready:
                del remaining[node]
            finished = set(ready)
            next_ready = []
            for node in ready:
                for dependent in self.build_dependents[node]:
                    deps = remaining.get(dependent)
                    if deps is not None and node in deps:
                        deps.discard(node)
                        if not deps:
                            next_ready.append(dependent)
            ready = sorted(set(next_ready) - finished)
        in_cycle = {m for c in cycles for m in c}
        blocked = sorted(set(remaining) - in_cycle)
        cut = [e for e in self.bootstrap_edges if e.recipe in nodes and e.target in nodes]
        return BuildOrder(waves=waves, cycles=cycles, blocked=blocked, bootstrap=cut)

    def strict_order(self) -> list[list[str]]:
        """Waves, or ``GraphError`` naming every cycle's members that no cut breaks."""
        result = self.order()
        if result.cycles:
            described = "; ".join(" -> ".join([*c, c[0]]) for c in result.cycles)
            raise GraphError(f"build-time dependency cycle(s): {described}")
        return result.waves

    def recipe_for(self, query: str) -> str:
        """The recipe that owns package (or recipe, or provided name) ``query``."""
        if query in self.recipes:
            return query
        packages = self.resolve(query)
        if not packages:
            raise GraphError(f"no recipe in the set provides {query!r}")
        owners = sorted({self.package_recipe[p] for p in packages})
        if len(owners) > 1:
            raise GraphError(f"{query!r} is provided by several recipes: {', '.join(owners)}")
        return owners[0]

    def _closure(self, start: Iterable[str], edges: dict[str, set[str]]) -> set[str]:
        seen = set(start)
        todo = list(seen)
        while todo:
            node = todo.pop()
            for nxt in edges.get(node, ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    def shared_group(self, recipe: str) -> list[str]:
        """Recipes that move together with ``recipe`` (same upstream, ``update.shared``)."""
        node = self.recipes[recipe]
        if not node.shared or node.upstream is None:
            return [recipe]
        return sorted(
            r.name for r in self.recipes.values() if r.upstream == node.upstream and r.shared
        )

    def image_packages(self, image: ImageNode) -> set[str]:
        """The image's packages and their runtime closure, within the set."""
        seen: set[str] = set()
        todo = [p for name in image.packages for p in self.resolve(name)]
        while todo:
            package = todo.pop()
            if package in seen:
                continue
            seen.add(package)
            for dep in self.package_runtime.get(package, ()):
                todo.extend(self.resolve(dep))
        return seen

    def dependents(
        self, query: str, *, rebuild_on: Mapping[str, Sequence[str]] | None = None
    ) -> Impact:
        """Everything a new version of ``query``'s recipe sets in motion: what must be rebuilt
        and what only re-tested, with the rule for each (``impact.py``)."""
        return impact(self, query, rebuild_on=rebuild_on)

    def to_dot(self) -> str:
        """Graphviz: solid build-time edges, dashed runtime edges, images as boxes."""
        lines = ["digraph nanodistro {", "  rankdir=LR;", "  node [shape=ellipse];"]
        for name in sorted(self.recipes):
            lines.append(f'  "{name}";')
        cut = {(e.recipe, e.target) for e in self.bootstrap_edges}
        for name in sorted(self.recipes):
            for dep in sorted(self.build_deps[name]):
                style = ' [style=dotted, label="bootstrap"]' if (name, dep) in cut else ""
                lines.append(f'  "{dep}" -> "{name}"{style};')
            for dep in sorted(self.runtime_deps[name] - self.build_deps[name]):
                lines.append(f'  "{dep}" -> "{name}" [style=dashed];')
        for image in self.images:
            lines.append(f'  "image:{image.name}" [shape=box];')
            owners = sorted(
                {self.package_recipe[p] for n in image.packages for p in self.resolve(n)}
            )
            for owner in owners:
                lines.append(f'  "{owner}" -> "image:{image.name}" [style=dotted];')
        lines.append("}")
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict[str, Any]:
        return {
            "recipes": {
                name: {
                    "version": r.version,
                    "epoch": r.epoch,
                    "packages": [p.name for p in r.packages],
                    "build_deps": sorted(self.build_deps[name]),
                    "runtime_deps": sorted(self.runtime_deps[name]),
                }
                for name, r in sorted(self.recipes.items())
            },
            "images": {
                image.name: sorted(
                    {self.package_recipe[p] for n in image.packages for p in self.resolve(n)}
                )
                for image in self.images
            },
            "external": {name: sorted(users) for name, users in sorted(self.external.items())},
        }


def build_graph(
    corpus: Corpus, *, published: PublishedIndex | None = None, cache_dir: Path | None = None
) -> DependencyGraph:
    return DependencyGraph(corpus.recipes, corpus.images, published=published, cache_dir=cache_dir)


__all__ = ["BootstrapEdge", "BuildOrder", "DependencyGraph", "Impact", "build_graph"]
