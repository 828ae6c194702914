"""Bootstrap edges: build dependencies satisfied by the previously published package.

A real distribution's build graph has cycles (gcc needs glibc, glibc is built with gcc; Wolfi's
toolchain forms one group of ~400 recipes). Wolfi builds in order anyway because a build
dependency already published in the repository does not have to be rebuilt first. Like
wolfictl's ``pkg/dag`` (``NewGraph``/``resolveCycle``), the edges are added one at a time and an
edge that would close a cycle is *cut*: the dependency is taken from the repository instead.

The rule, deterministic and the same as wolfictl's:

1. recipes are visited in name order, each one's build dependencies in the order written;
2. an edge R -> T (R build-depends on T's package) that would close a cycle (T already
   depends, through kept edges, on R) is cut itself when T's package is published: R is built
   with the published T (wolfictl tries the repository's candidate once the local one would
   make a cycle);
3. otherwise (T is not published) the existing path T -> ... -> R is unwound from its end:
   the edge nearest R whose target is published is cut (that recipe is built with the
   published R), until no path is left; then R -> T is kept;
4. if a path has no edge whose target is published, the cycle cannot be broken: R -> T is
   kept and the cycle is reported, as before.

"Published" is the ``--repo`` index (any version of a package or a ``provides`` name) when one
is given; without a repository every package of the set is assumed published, and the cut
edges are listed as what must already exist to build the rest.

Only edges inside one strongly connected group can close a cycle, so the work is done per
group: recipes outside the toolchain's cycle cost nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import pickle
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nanodistro.errors import FormatError, GraphError, NanodistroError
from nanodistro.util.atomic import atomic_write_bytes


@dataclass(frozen=True)
class BootstrapEdge:
    """A cut build edge: ``recipe`` is built with the published ``dependency`` package(s)."""

    recipe: str
    target: str  # the recipe whose published package satisfies the dependency
    names: tuple[str, ...]  # the dependency names written in ``recipe``
    cycle: tuple[str, ...]  # the cycle the edge would close: recipe -> target -> ... -> recipe
    published: str  # "repository" (seen in --repo), "assumed", or "missing" (self, not in it)

    def reason(self) -> str:
        if self.recipe == self.target:
            what = ", ".join(self.names)
            if self.published == "missing":
                return (
                    f"{self.recipe} builds with its own {what}, which the repository does not "
                    "have: it cannot be built from this set"
                )
            source = "from the repository" if self.published == "repository" else "assumed"
            return f"{self.recipe} builds with its own published {what} ({source}; self-dependency)"
        loop = " -> ".join([*self.cycle, self.cycle[0]]) if self.cycle else ""
        source = "from the repository" if self.published == "repository" else "assumed published"
        what = ", ".join(self.names)
        if self.names != (self.target,):
            what += f" (recipe {self.target})"
        return (
            f"{self.recipe} builds with the published {what} ({source}); building "
            f"{self.target} first would close the cycle {loop}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "target": self.target,
            "names": list(self.names),
            "cycle": list(self.cycle),
            "published": self.published,
            "reason": self.reason(),
        }


@dataclass
class PublishedIndex:
    """What a repository already has: package names, their provides and depends."""

    source: str
    names: set[str]  # package names and provided names (``so:libssl.so.3``, ``cmd:…``)
    depends: dict[str, tuple[str, ...]]  # package name -> dependency names (newest entry)
    provides: dict[str, tuple[str, ...]]  # package name -> provided names

    def has(self, name: str) -> bool:
        return name in self.names


def _index_files(repo: Path) -> list[Path]:
    if repo.is_file():
        return [repo]
    if (repo / "APKINDEX.tar.gz").is_file():
        return [repo / "APKINDEX.tar.gz"]
    if (repo / "APKINDEX").is_file():
        return [repo / "APKINDEX"]
    found = sorted(repo.glob("*/APKINDEX.tar.gz")) if repo.is_dir() else []
    if not found:
        raise GraphError(
            "no APKINDEX.tar.gz here or in an <arch>/ folder (expected a repository, an arch "
            "folder or an index file)",
            where=str(repo),
        )
    return found


def load_published(repo: Path) -> PublishedIndex:
    """Read a repository's index(es). Signatures are not checked: the graph only asks which
    names exist (nothing is installed from it), and a test repository's key may be absent."""
    from nanodistro.formats.apkindex import parse_apkindex_text, read_index
    from nanodistro.graph.corpus import atom_name

    index = PublishedIndex(str(repo), set(), {}, {})
    for path in _index_files(repo):
        try:
            data = path.read_bytes()
        except OSError as error:
            raise GraphError(
                f"cannot read the repository index ({error.strerror})", where=str(path)
            ) from None
        try:
            if data[:2] == b"\x1f\x8b":
                packages = read_index(data, where=str(path)).packages
            else:
                packages = parse_apkindex_text(data.decode("utf-8"), where=str(path))
        except (NanodistroError, UnicodeDecodeError) as error:
            if isinstance(error, NanodistroError):
                raise
            raise FormatError("not an APKINDEX (not UTF-8 text)", where=str(path)) from None
        for info in packages:
            index.names.add(info.name)
            provided = tuple(p.split("=", 1)[0] for p in info.provides if p)
            index.names.update(provided)
            index.provides[info.name] = provided
            index.depends[info.name] = tuple(n for n in (atom_name(d) for d in info.depends) if n)
    return index


CUTS_FORMAT = 1


def cached_cuts(
    groups: Sequence[Sequence[str]],
    edges: Mapping[str, Sequence[tuple[str, tuple[str, ...]]]],
    published: PublishedIndex | None,
    cache_dir: Path | None,
) -> list[BootstrapEdge]:
    """``cut_cycles`` remembered on disk, keyed by everything it reads: the groups, their
    edges (with the names written) and which of those names the repository publishes."""
    check = published.has if published is not None else None
    if cache_dir is None or not groups:
        return cut_cycles(groups, edges, check)
    inputs = []
    for group in groups:
        members = set(group)
        for recipe in group:
            inside = [(t, n) for t, n in edges.get(recipe, ()) if t in members]
            flags = [[check(x) for x in n] for _, n in inside] if check else None
            inputs.append((recipe, inside, flags))
    key = hashlib.sha256(
        repr((CUTS_FORMAT, published is None, [list(g) for g in groups], inputs)).encode()
    ).hexdigest()
    file = cache_dir / f"graph-cuts-v{CUTS_FORMAT}.pickle"
    try:
        with file.open("rb") as handle:
            stored = pickle.load(handle)  # our own cache file, written below
        if isinstance(stored, tuple) and len(stored) == 2 and stored[0] == key:
            return [BootstrapEdge(*fields) for fields in stored[1]]
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ValueError, TypeError):
        pass
    cuts = cut_cycles(groups, edges, check)
    rows = [(e.recipe, e.target, e.names, e.cycle, e.published) for e in cuts]
    with contextlib.suppress(OSError):  # a cache that cannot be written only costs speed
        atomic_write_bytes(file, pickle.dumps((key, rows), protocol=5))
    return cuts


def _path(kept: Mapping[str, set[str]], start: str, goal: str) -> list[str] | None:
    """Shortest path start -> ... -> goal over kept edges (BFS, neighbours in name order)."""
    if start == goal:
        return [start]
    parent: dict[str, str] = {start: start}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in sorted(kept.get(node, ())):
            if nxt in parent:
                continue
            parent[nxt] = node
            if nxt == goal:
                path = [goal]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return path[::-1]
            queue.append(nxt)
    return None


def cut_cycles(
    groups: Iterable[Sequence[str]],
    edges: Mapping[str, Sequence[tuple[str, tuple[str, ...]]]],
    published: Callable[[str], bool] | None,
) -> list[BootstrapEdge]:
    """The cut edges for each strongly connected ``group`` (see the module doc for the rule).

    ``edges[recipe]`` lists ``(target recipe, dependency names)`` in the order written;
    ``published(name)`` says whether a dependency name is in the repository (None: assume yes).
    """
    cuts: list[BootstrapEdge] = []
    names_of: dict[tuple[str, str], tuple[str, ...]] = {
        (recipe, target): names for recipe, listed in edges.items() for target, names in listed
    }

    def available(recipe: str, target: str) -> bool:
        names = names_of[(recipe, target)]
        return published is None or all(published(n) for n in names)

    def cut(recipe: str, target: str, cycle: list[str]) -> None:
        cuts.append(
            BootstrapEdge(
                recipe=recipe,
                target=target,
                names=names_of[(recipe, target)],
                cycle=tuple(cycle),
                published="assumed" if published is None else "repository",
            )
        )

    for group in groups:
        members = set(group)
        kept: dict[str, set[str]] = {m: set() for m in group}
        for recipe in sorted(group):
            for target, _ in edges.get(recipe, ()):
                if target not in members or target in kept[recipe]:
                    continue
                back = _path(kept, target, recipe)
                if back is None:
                    kept[recipe].add(target)
                    continue
                if available(recipe, target):
                    cut(recipe, target, [recipe, *back[:-1]])
                    continue
                # Unwind the paths target -> ... -> recipe from their end (wolfictl's
                # resolveCycle): the dependents of ``recipe`` take its published package.
                while back is not None:
                    loop = [recipe, *back[:-1]]  # the cycle R -> T would close
                    for i in range(len(back) - 1, 0, -1):
                        source, dest = back[i - 1], back[i]
                        if available(source, dest):
                            kept[source].discard(dest)
                            cut(source, dest, _rotate(loop, source))
                            break
                    else:
                        break  # nothing on this path is published: the cycle stays
                    back = _path(kept, target, recipe)
                kept[recipe].add(target)  # kept even when unbreakable: the cycle is reported
    return cuts


def _rotate(cycle: list[str], first: str) -> list[str]:
    """The cycle's members starting at ``first``."""
    index = cycle.index(first)
    return cycle[index:] + cycle[:index]
