"""CLI: ``nanodistro graph`` — build order, reverse dependencies and cycles of a recipe set."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from nanodistro.cli._common import console, err_console, escape, print_json
from nanodistro.cli._recipe_args import print_note
from nanodistro.errors import GraphError
from nanodistro.graph.impact import BUILD_ONLY, REBUILD, RETEST

if TYPE_CHECKING:
    from nanodistro.graph.graph import DependencyGraph


def _default_cache() -> Path:
    return Path.home() / ".cache" / "nanodistro" / "graph"


def _print_order(graph: DependencyGraph, json_output: bool) -> None:
    order = graph.order()
    if json_output:
        print_json(order.to_json())
    else:
        for number, wave in enumerate(order.waves, 1):
            console.print(
                f"[bold]wave {number}[/] ({len(wave)}): " + escape(" ".join(wave)), soft_wrap=True
            )
        if order.bootstrap:
            console.print(
                f"[bold]bootstrap edges[/] ({len(order.bootstrap)}, built with the published "
                "package instead of waiting for it):"
            )
            # plain echo: rich costs about a millisecond a line, and a distribution has 1,000s
            typer.echo("\n".join("  " + edge.reason() for edge in order.bootstrap))
        if order.blocked:
            console.print(
                "[yellow]not ordered (depend on a cycle):[/] " + escape(" ".join(order.blocked)),
                soft_wrap=True,
            )
    if order.cycles:
        described = "; ".join(" -> ".join([*c, c[0]]) for c in order.cycles)
        why = (
            f" (no bootstrap edge breaks it: none of its build dependencies is published in "
            f"{graph.published.source})"
            if graph.published is not None
            else ""
        )
        raise GraphError(f"build-time dependency cycle(s): {described}{why}")


def _print_dependents(
    graph: DependencyGraph,
    package: str,
    json_output: bool,
    rebuild_on: Mapping[str, list[str]],
) -> None:
    impact = graph.dependents(package, rebuild_on=rebuild_on)
    if json_output:
        print_json(impact.to_json())
        return
    console.print(f"[bold]{escape(package)}[/] is built by recipe [bold]{escape(impact.recipe)}[/]")
    if len(impact.shared_group) > 1:
        console.print(
            "moves together with (shared update): " + " ".join(impact.shared_group), markup=False
        )
    if impact.epoch_bump:
        console.print(
            "epoch bump (update.shared): " + " ".join(impact.epoch_bump),
            soft_wrap=True,
            markup=False,
        )
    for number, wave in enumerate(impact.rebuild, 1):
        console.print(f"rebuild wave {number}: " + " ".join(wave), soft_wrap=True, markup=False)
    titles = {
        REBUILD: "must be rebuilt",
        RETEST: "re-test only (runtime closure; no rebuild)",
        BUILD_ONLY: "use it at build time only (nothing to do)",
    }
    for category, title in titles.items():
        names = sorted(n for n, r in impact.reasons.items() if r.category == category)
        if names:
            console.print(f"{title} ({len(names)}):", markup=False)
        if names:
            typer.echo(
                "\n".join(
                    f"  {name}  [{impact.reasons[name].rule}] {impact.reasons[name].detail}"
                    for name in names
                )
            )
    console.print(
        "images to rebuild: " + (" ".join(impact.images) or "none"), soft_wrap=True, markup=False
    )


def _recipe_and_image_dirs(
    directory: Path, images: Path | None
) -> tuple[Path, Path | None, dict[str, list[str]]]:
    """A workspace directory means its recipes and images (nanodistro.toml); a workspace's
    recipes directory brings the workspace's images; otherwise DIR/images if present. Also
    the workspace's ``[rebuild-on]`` (empty without a workspace)."""
    from nanodistro.factory.workspace import WORKSPACE_FILE, find_workspace, load_workspace

    found = (directory / WORKSPACE_FILE) if (directory / WORKSPACE_FILE).is_file() else None
    found = found or find_workspace(directory)
    rebuild_on: dict[str, list[str]] = {}
    if found is not None:
        workspace = load_workspace(found)
        rebuild_on = dict(workspace.rebuild_on)
        if directory.resolve() == workspace.root:
            directory = workspace.recipes_dir
        if images is None and directory.resolve() == workspace.recipes_dir.resolve():
            images = workspace.images_dir if workspace.images_dir.is_dir() else None
    if images is None and (directory / "images").is_dir():
        images = directory / "images"
    return directory, images, rebuild_on


def graph(
    directory: Path = typer.Argument(
        Path("."), help="Directory of recipes (top-level *.yaml), or a workspace (nanodistro.toml)."
    ),
    order: bool = typer.Option(False, "--order", help="Print the build order in parallel waves."),
    dependents: str = typer.Option(
        None,
        "--dependents",
        metavar="PKG",
        help="What a new version of PKG (package, recipe or provided name) must rebuild (what "
        "links or embeds it: -dev/-static/so: use, the workspace rebuild-on list) and what only needs "
        "re-testing (its runtime closure), with the rule for each.",
    ),
    dot: bool = typer.Option(False, "--dot", help="Print the graph in Graphviz DOT."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON."),
    images: Path = typer.Option(
        None, "--images", help="Directory of apko image configs [DIR/images if present]."
    ),
    cache_dir: Path = typer.Option(
        None, "--cache-dir", help="Parse and bootstrap-cut cache [~/.cache/nanodistro/graph]."
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help="Parse every recipe afresh."),
    repo: Path = typer.Option(
        None,
        "--repo",
        metavar="REPO",
        help="Published repository (folder with <arch>/APKINDEX.tar.gz, or an index file): "
        "a build edge that would close a cycle is cut only when its package is published "
        "there (without it every package is assumed published; the cut edges are listed).",
    ),
) -> None:
    """Dependency graph of a recipe set: build-time and runtime edges, images as consumers.

    Without an option, prints a summary. A build edge that would close a cycle is satisfied
    by the published package (a bootstrap edge, listed with the cycle it breaks; recipes in
    name order, the first edge to close a cycle is cut, as wolfictl's dag). --order exits 1
    only if a cycle remains (a dependency in it not published in --repo).
    """
    # the recipe scanner and graph (YAML, pickle caches) are imported by a run, not by --help
    from nanodistro.graph.bootstrap import load_published
    from nanodistro.graph.corpus import load_corpus
    from nanodistro.graph.graph import build_graph
    from nanodistro.recipe.folder import skip_note

    directory, images_dir, rebuild_on = _recipe_and_image_dirs(directory, images)
    published = load_published(repo) if repo is not None else None
    cache = None if no_cache else (cache_dir or _default_cache())
    corpus = load_corpus(directory, images_dir=images_dir, cache_dir=cache)
    if not corpus.recipes and not corpus.errors:
        raise GraphError("no recipe files (*.yaml) in this directory", where=str(directory))
    for error in corpus.errors:
        err_console.print(f"[red]skipped:[/] {escape(str(error))}")
    note = skip_note(corpus.skipped)
    if note:
        print_note(note)
    dependency_graph = build_graph(corpus, published=published, cache_dir=cache)
    if order:
        _print_order(dependency_graph, json_output)
    elif dependents:
        _print_dependents(dependency_graph, dependents, json_output, rebuild_on)
    elif dot:
        typer.echo(dependency_graph.to_dot(), nl=False)
    elif json_output:
        print_json(
            {
                **dependency_graph.to_json(),
                "cycles": dependency_graph.remaining_cycles(),
                "bootstrap_edges": [e.to_json() for e in dependency_graph.bootstrap_edges],
            }
        )
    else:
        g = dependency_graph
        console.print(
            f"{len(g.recipes)} recipes, {len(g.package_recipe)} packages, {len(g.images)} images; "
            f"{sum(map(len, g.build_deps.values()))} build-time and "
            f"{sum(map(len, g.runtime_deps.values()))} runtime edges; "
            f"{len(g.external)} names from outside the set; "
            f"{len(g.bootstrap_edges)} bootstrap edges; {len(g.remaining_cycles())} cycles",
            soft_wrap=True,
        )
    if len(corpus.errors) == 1:
        raise corpus.errors[0]  # the one error: line every command ends with
    if corpus.errors:
        raise GraphError(f"{len(corpus.errors)} recipe files could not be read (skipped above)")


def register(app: typer.Typer) -> None:
    """Add ``graph`` to the root app."""
    app.command("graph")(graph)
