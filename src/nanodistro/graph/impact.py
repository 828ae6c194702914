"""What a new version of a recipe sets in motion: rebuilds versus re-tests, each with its rule.

A new openssl does not need every recipe that has openssl somewhere in its build environment
rebuilt. A recipe must be **rebuilt** when its packages are tied to the changed ones' bytes:

- ``changed``: the recipe itself, and its ``update.shared`` group;
- ``update.shared``: a direct dependent of a shared update (an epoch bump, as before);
- ``rebuild-on``: the workspace's ``[rebuild-on]`` opts the recipe in for this package/recipe;
- ``static``: it builds against a ``-static`` package of a rebuilt recipe (embeds it; this
  one is transitive: what embeds an embedder embeds the changed code too);
- ``soname``: its packages depend on a ``so:`` name a changed package provides (in the recipe,
  or in the ``--repo`` index: melange writes the linked sonames into the published package);
- ``dev``: it builds against a ``-dev`` package, a ``pc:`` or a ``so:`` name of a changed
  recipe (headers and link libraries: it links the library).

The factory decides the same from the built packages (``factory.building.rebuild_triggers``:
static archives, linked sonames, ``[rebuild-on]``); here only recipes (and an index) are read.

Everything else whose runtime closure reaches a rebuilt recipe only needs **re-testing** (and
its images rebuilding): ``runtime`` rule, naming the dependency it reaches it through. Recipes
that use a changed package at build time only (a tool, not a library) are listed as
``build-only``: nothing to do for them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nanodistro.graph.graph import DependencyGraph

REBUILD = "rebuild"
RETEST = "retest"
BUILD_ONLY = "build-only"


@dataclass(frozen=True)
class Reason:
    """Why a recipe is in a category: the rule and the package (or recipe) it went through."""

    category: str
    rule: str
    via: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"category": self.category, "rule": self.rule, "via": self.via, "why": self.detail}


@dataclass
class Impact:
    """What a change to ``recipe`` sets in motion."""

    query: str
    recipe: str
    shared_group: list[str]
    epoch_bump: list[str]
    rebuild: list[list[str]]  # in build order waves, the changed recipe(s) first
    runtime_dependents: list[str]  # re-test only (and image rebuilds)
    images: list[str]
    build_only: list[str] = field(default_factory=list)
    reasons: dict[str, Reason] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "recipe": self.recipe,
            "shared_group": self.shared_group,
            "epoch_bump": self.epoch_bump,
            "rebuild": self.rebuild,
            "retest": self.runtime_dependents,
            "runtime_dependents": self.runtime_dependents,
            "build_only": self.build_only,
            "images": self.images,
            "reasons": {name: r.to_json() for name, r in sorted(self.reasons.items())},
        }


def _link_rule(name: str, package: str) -> tuple[str, str] | None:
    """(rule, text) when build dependency ``name`` (resolving to ``package``) means linking."""
    if package.endswith("-static"):
        return "static", f"builds against {name} (embeds it statically)"
    if package.endswith("-dev") or name.startswith(("pc:", "so:")):
        return "dev", f"builds against {name} (headers and libraries: links it)"
    return None


def impact(
    graph: DependencyGraph,
    query: str,
    *,
    rebuild_on: Mapping[str, Sequence[str]] | None = None,
) -> Impact:
    """Classify every recipe a new version of ``query``'s recipe touches (module doc)."""
    recipe = graph.recipe_for(query)
    group = graph.shared_group(recipe)
    reasons: dict[str, Reason] = {}
    for member in group:
        why = "the changed recipe" if member == recipe else f"moves with {recipe} (update.shared)"
        reasons[member] = Reason(REBUILD, "changed", recipe, why)

    rebuilt = set(group)
    packages_of = {name: {p.name for p in graph.recipes[name].packages} for name in graph.recipes}
    changed_packages = {p for m in group for p in packages_of[m]}
    sonames = _sonames(graph, changed_packages)

    bumped: set[str] = set()
    if graph.recipes[recipe].shared:
        for member in group:
            bumped |= graph.build_dependents[member] | graph.runtime_dependents[member]
        bumped -= rebuilt
        for name in sorted(bumped):
            reasons[name] = Reason(
                REBUILD, "update.shared", recipe, f"epoch bump: a direct dependent of {recipe}"
            )
        rebuilt |= bumped

    for name, wanted in sorted((rebuild_on or {}).items()):
        hit = sorted(set(wanted) & (changed_packages | set(group)))
        if name in graph.recipes and hit and name not in rebuilt:
            reasons[name] = Reason(REBUILD, "rebuild-on", hit[0], f"[rebuild-on] lists {hit[0]}")
            rebuilt.add(name)

    for name in sorted(graph.recipes):
        if name in rebuilt:
            continue
        linked = _soname_use(graph, name, sonames)
        if linked:
            reasons[name] = Reason(REBUILD, "soname", linked, f"links {linked}")
            rebuilt.add(name)

    # -dev / -static build dependencies; static embedding carries on through embedders.
    build_only: dict[str, Reason] = {}
    frontier = deque(sorted(rebuilt))
    embedded = set(group)
    while frontier:
        source = frontier.popleft()
        for name in sorted(graph.build_dependents.get(source, ())):
            if name in rebuilt:
                continue
            for dep in graph.recipes[name].build:
                owners = [p for p in graph.resolve(dep) if graph.package_recipe[p] == source]
                if not owners:
                    continue
                rule = _link_rule(dep, owners[0])
                if rule is None:
                    if source not in group:
                        continue
                    build_only.setdefault(
                        name,
                        Reason(BUILD_ONLY, "build-only", dep, f"uses {dep} at build time only"),
                    )
                    continue
                if rule[0] == "dev" and source not in embedded:
                    continue  # links a rebuilt library whose soname did not change
                reasons[name] = Reason(REBUILD, rule[0], dep, rule[1])
                rebuilt.add(name)
                build_only.pop(name, None)
                if rule[0] == "static":
                    embedded.add(name)
                    frontier.append(name)
                break

    retest = _runtime_reach(graph, rebuilt, reasons)
    for name, reason in build_only.items():
        if name not in rebuilt and name not in retest:
            reasons[name] = reason

    affected = rebuilt | set(retest)
    images = sorted(
        image.name
        for image in graph.images
        if any(graph.package_recipe[p] in affected for p in graph.image_packages(image))
    )
    order = graph.order(rebuilt)
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
        runtime_dependents=sorted(retest),
        images=images,
        build_only=sorted(n for n in build_only if n not in affected),
        reasons=reasons,
    )


def _sonames(graph: DependencyGraph, packages: set[str]) -> set[str]:
    """``so:`` names the changed packages provide (recipe ``provides`` and the index)."""
    names = {
        provided
        for recipe in graph.recipes.values()
        for package in recipe.packages
        if package.name in packages
        for provided in package.provides
        if provided.startswith("so:")
    }
    if graph.published is not None:
        for package in packages:
            names.update(
                p for p in graph.published.provides.get(package, ()) if p.startswith("so:")
            )
    return names


def _soname_use(graph: DependencyGraph, recipe: str, sonames: set[str]) -> str | None:
    """The first changed soname the recipe's packages depend on (recipe or published index)."""
    if not sonames:
        return None
    for package in graph.recipes[recipe].packages:
        hit = sorted(set(package.runtime) & sonames)
        if hit:
            return hit[0]
        if graph.published is not None:
            hit = sorted(set(graph.published.depends.get(package.name, ())) & sonames)
            if hit:
                return hit[0]
    return None


def _runtime_reach(
    graph: DependencyGraph, rebuilt: set[str], reasons: dict[str, Reason]
) -> list[str]:
    """Recipes whose runtime closure reaches a rebuilt one (breadth first: the nearest)."""
    found: list[str] = []
    seen = set(rebuilt)
    queue = deque(sorted(rebuilt))
    while queue:
        source = queue.popleft()
        for name in sorted(graph.runtime_dependents.get(source, ())):
            if name in seen:
                continue
            seen.add(name)
            found.append(name)
            via = next(
                (
                    dep
                    for p in graph.recipes[name].packages
                    for dep in p.runtime
                    if any(graph.package_recipe[q] == source for q in graph.resolve(dep))
                ),
                source,
            )
            owner = "" if via == source else f" (recipe {source})"
            reasons[name] = Reason(
                RETEST, "runtime", via, f"needs {via}{owner} at run time: re-test, no rebuild"
            )
            queue.append(name)
    return sorted(found)
