"""The dependency graph over a recipe set: build order, reverse closure, cycles.

Edges run from a dependency recipe to the recipe that needs it:
- build-time: a recipe's ``environment.contents.packages`` (wolfictl pkg/dag/graph.go);
- runtime: its packages' ``dependencies.runtime``, including ``so:``/``cmd:``/``pc:`` names that
  another recipe's package declares in ``dependencies.provides``.
A name resolves to the package of that name if one exists, else to every package providing it
with the highest ``provider-priority``. Names nothing in the set provides are external (the
distribution's bootstrap or an upstream repository) and create no edge. A recipe's dependency on
its own packages (bootstrapping) creates no edge either.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from nanodistro.errors import GraphError
from nanodistro.graph.corpus import Corpus, ImageNode, RecipeNode

if TYPE_CHECKING:
    from _typeshed import SupportsRichComparison

NodeT = TypeVar("NodeT", bound="SupportsRichComparison")


@dataclass
class BuildOrder:
    """Recipes in waves (each wave depends only on earlier ones) and the cycles left out."""

    waves: list[list[str]]
    cycles: list[list[str]]
    blocked: list[str] = field(default_factory=list)  # depend on a cycle, so not ordered

    def to_json(self) -> dict[str, Any]:
        return {"waves": self.waves, "cycles": self.cycles, "blocked": self.blocked}


@dataclass
class Impact:
    """What a change to ``recipe`` sets in motion."""

    query: str
    recipe: str
    shared_group: list[str]
    epoch_bump: list[str]
    rebuild: list[list[str]]  # in build order waves, the changed recipe(s) first
    runtime_dependents: list[str]
    images: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "recipe": self.recipe,
            "shared_group": self.shared_group,
            "epoch_bump": self.epoch_bump,
            "rebuild": self.rebuild,
            "runtime_dependents": self.runtime_dependents,
            "images": self.images,
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

    def __init__(self, recipes: Sequence[RecipeNode], images: Sequence[ImageNode] = ()) -> None:
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
        for recipe in self.recipes.values():
            for dep in recipe.build:
                self._link(recipe.name, dep, self.build_deps)
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

    def _link(self, recipe: str, dep: str, edges: dict[str, set[str]]) -> None:
        packages = self.resolve(dep)
        if not packages:
            self.external[dep].add(recipe)
        for package in packages:
            owner = self.package_recipe[package]
            if owner != recipe:
                edges[recipe].add(owner)

    @staticmethod
    def _reverse(edges: dict[str, set[str]]) -> dict[str, set[str]]:
        reverse: dict[str, set[str]] = {name: set() for name in edges}
        for node, deps in edges.items():
            for dep in deps:
                reverse[dep].add(node)
        return reverse

    # --- queries ------------------------------------------------------------------------------

    def cycles(self) -> list[list[str]]:
        """Build-time dependency cycles, each as its sorted member list."""
        components = strongly_connected(sorted(self.recipes), self.build_deps)
        return sorted(c for c in components if len(c) > 1)

    def order(self, subset: Iterable[str] | None = None) -> BuildOrder:
        """Build order in parallel waves (Kahn's algorithm over build-time edges).

        Cycle members, and recipes depending on them, are reported rather than ordered.
        """
        nodes = set(self.recipes) if subset is None else set(subset)
        cycles = [c for c in self.cycles() if set(c) & nodes]
        remaining = {n: {d for d in self.build_deps[n] if d in nodes} for n in nodes}
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
        return BuildOrder(waves=waves, cycles=cycles, blocked=blocked)

    def strict_order(self) -> list[list[str]]:
        """Waves, or ``GraphError`` naming every cycle's members."""
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

    def dependents(self, query: str) -> Impact:
        """Everything a new version of ``query``'s recipe sets in motion.

        - the shared group moves together;
        - with ``update.shared``, the direct dependents (build or runtime) get an epoch bump;
        - rebuild: the changed recipes, those bumped, and everything that build-depends on any
          of them, transitively, in build order;
        - runtime dependents (installed alongside, not rebuilt) are listed for information;
        - images: every image whose package closure includes a changed or rebuilt recipe.
        """
        recipe = self.recipe_for(query)
        group = self.shared_group(recipe)
        bumped: set[str] = set()
        if self.recipes[recipe].shared:
            for member in group:
                bumped |= self.build_dependents[member] | self.runtime_dependents[member]
            bumped -= set(group)
        rebuild = self._closure([*group, *bumped], self.build_dependents)
        runtime_only = self._closure(rebuild, self.runtime_dependents) - rebuild
        affected = rebuild | runtime_only
        images = sorted(
            image.name
            for image in self.images
            if any(self.package_recipe[p] in affected for p in self.image_packages(image))
        )
        order = self.order(rebuild)
        waves = order.waves + (
            [sorted(order.blocked + [m for c in order.cycles for m in c])]
            if order.blocked or order.cycles
            else []
        )
        return Impact(
            query=query,
            recipe=recipe,
            shared_group=group,
            epoch_bump=sorted(bumped),
            rebuild=waves,
            runtime_dependents=sorted(runtime_only),
            images=images,
        )

    def to_dot(self) -> str:
        """Graphviz: solid build-time edges, dashed runtime edges, images as boxes."""
        lines = ["digraph nanodistro {", "  rankdir=LR;", "  node [shape=ellipse];"]
        for name in sorted(self.recipes):
            lines.append(f'  "{name}";')
        for name in sorted(self.recipes):
            for dep in sorted(self.build_deps[name]):
                lines.append(f'  "{dep}" -> "{name}";')
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


def build_graph(corpus: Corpus) -> DependencyGraph:
    return DependencyGraph(corpus.recipes, corpus.images)
