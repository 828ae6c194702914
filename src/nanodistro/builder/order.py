"""The order in which recipes build: each after the recipes whose packages it needs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from nanodistro.builder import environment as env_mod
from nanodistro.builder.compile import compile_recipe
from nanodistro.errors import GraphError
from nanodistro.recipe.model import load_recipe
from nanodistro.recipe.substitute import substitute


def build_order(paths: Sequence[Path], arch: str, pipeline_dirs: Sequence[Path] = ()) -> list[Path]:
    """Order recipes so each comes after the recipes whose packages it needs.

    Hard edges: the build and test environments' packages; a cycle of them is a GraphError.
    Soft edges: the runtime dependencies of the recipe's packages, which its tests install; each
    is kept unless it would close a cycle (runtime dependency loops are legal).
    """
    edges, name = _edges(paths, arch, pipeline_dirs)
    return _topological(edges, name)


def build_waves(
    paths: Sequence[Path], arch: str, pipeline_dirs: Sequence[Path] = ()
) -> list[list[Path]]:
    """``build_order`` in waves that can build at the same time: a recipe's wave is one more
    than the latest wave of the recipes it needs (the same hard and kept soft edges: a runtime
    dependency must be published first too, or the repository's consistency gate refuses the
    package and its tests cannot install it). Each wave keeps ``build_order``'s order."""
    edges, name = _edges(paths, arch, pipeline_dirs)
    order = _topological(edges, name)
    wave: dict[Path, int] = {}
    for path in order:  # dependencies come first, so their waves are known
        wave[path] = 1 + max((wave[dep] for dep in edges[path]), default=-1)
    waves: list[list[Path]] = [[] for _ in range(max(wave.values(), default=-1) + 1)]
    for path in order:
        waves[wave[path]].append(path)
    return waves


def _edges(
    paths: Sequence[Path], arch: str, pipeline_dirs: Sequence[Path]
) -> tuple[dict[Path, set[Path]], Callable[[Path], str]]:
    """Recipe -> the recipes it builds after (hard edges plus the soft ones that close no
    cycle), and a recipe's package name (for messages)."""
    recipes = {Path(p): load_recipe(Path(p)) for p in paths}
    provided_by: dict[str, Path] = {}
    needs: dict[Path, set[str]] = {}
    runtime: dict[Path, set[str]] = {}
    for path, recipe in recipes.items():
        compiled = compile_recipe(recipe, arch, pipeline_dirs=pipeline_dirs)
        for package in compiled.packages:
            provided_by.setdefault(package.name, path)
        for provide in recipe.package.dependencies.provides:
            provided_by.setdefault(env_mod.split_atom(provide), path)
        wanted = set(compiled.environment_packages)
        for test in compiled.tests:
            wanted |= set(test.environment_packages)
        needs[path] = {env_mod.split_atom(n) for n in wanted}
        declared = [
            *recipe.package.dependencies.runtime,
            *(
                dep
                for p in compiled.packages
                if p.subpackage
                for dep in p.subpackage.dependencies.runtime
            ),
        ]
        runtime[path] = {
            env_mod.split_atom(substitute(dep, compiled.main.substitutions, recipe.where))
            for dep in declared
        }

    def targets(path: Path, names: set[str]) -> set[Path]:
        return {provided_by[n] for n in names if n in provided_by and provided_by[n] != path}

    edges = {path: targets(path, wanted) for path, wanted in needs.items()}
    order = _topological(edges, lambda p: recipes[p].package.name)  # raises on a hard cycle

    def reaches(source: Path, goal: Path) -> bool:
        seen, todo = set(), [source]
        while todo:
            node = todo.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                todo.extend(edges[node])
        return False

    for path in order:  # deterministic: soft edges considered in the hard order
        for dep in sorted(targets(path, runtime[path]) - edges[path]):
            if not reaches(dep, path):  # else a runtime loop: one test sees the older package
                edges[path].add(dep)
    return edges, lambda p: recipes[p].package.name


def _topological(edges: dict[Path, set[Path]], name: Callable[[Path], str]) -> list[Path]:
    """Depth-first order (dependencies first, ties by path); a cycle is a GraphError."""
    order: list[Path] = []
    state: dict[Path, int] = {}

    def visit(path: Path, stack: list[Path]) -> None:
        if state.get(path) == 2:
            return
        if state.get(path) == 1:
            cycle = [*stack[stack.index(path) :], path]
            raise GraphError("build dependency cycle: " + " -> ".join(name(p) for p in cycle))
        state[path] = 1
        for dep in sorted(edges[path]):
            visit(dep, [*stack, path])
        state[path] = 2
        order.append(path)

    for path in edges:
        visit(path, [])
    return order
