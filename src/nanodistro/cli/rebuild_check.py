"""CLI: ``nanodistro rebuild-check`` — rebuild published packages independently, compare bytes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from nanodistro.cli._common import console, err_console, escape, print_json
from nanodistro.errors import ConfigError

if TYPE_CHECKING:
    from nanodistro.builder.reproducibility import RecipeCheck

# Differences shown per package (--json has them all): a build time in every mtime would
# otherwise print one line per file.
SHOWN_DIFFERENCES = 20


def _recipes(recipes: list[Path], all_recipes: bool, workspace: Path | None) -> list[Path]:
    from nanodistro.cli._common import workspace_file
    from nanodistro.factory.workspace import load_workspace

    if all_recipes and recipes:
        raise ConfigError("give recipes or --all, not both", field="--all")
    if not all_recipes:
        if not recipes:
            raise ConfigError("name the recipes to rebuild, or --all", field="RECIPE")
        return recipes
    loaded = load_workspace(workspace_file(workspace))
    found = loaded.recipe_files()
    if not found:
        raise ConfigError("the workspace has no recipes", where=str(loaded.recipes_dir))
    return found


def _print_check(check: RecipeCheck) -> None:
    statuses = ", ".join(f"{p.name} {p.status}" for p in check.packages)
    label = f"{check.name}-{check.version}" if check.version else check.name
    console.print(f"{escape(label)}: {escape(statuses)} ({check.seconds:g} s)", highlight=False)
    for note in check.notes:
        console.print(f"  [yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    for package in check.packages:
        if package.status in ("identical", "missing"):
            continue
        if package.message:
            first, *rest = package.message.splitlines()
            console.print(f"  {package.name}: {escape(first)}", highlight=False, soft_wrap=True)
            for line in rest[-10:]:
                console.print(f"    {escape(line)}", highlight=False, soft_wrap=True)
        for difference in package.differences[:SHOWN_DIFFERENCES]:
            console.print(f"  {package.file}: {escape(str(difference))}", highlight=False)
        hidden = len(package.differences) - SHOWN_DIFFERENCES
        if hidden > 0:
            console.print(f"  {package.file}: ... and {hidden} more (--json lists them all)")
        if package.rebuilt_path:
            console.print(f"  rebuilt package kept as {package.rebuilt_path}", highlight=False)


def rebuild_check_command(
    recipes: list[Path] = typer.Argument(None, help="melange recipe files (or --all)."),
    all_recipes: bool = typer.Option(False, "--all", help="Every recipe of the workspace."),
    workspace: Path | None = typer.Option(
        None,
        "--workspace",
        "-w",
        help="Workspace directory or nanodistro.toml for --all and the defaults (default: the "
        "one above the recipes, else the nearest one, else ./examples).",
    ),
    repo: Path | None = typer.Option(
        None, "--repo", help="The repository the packages were published to."
    ),
    arch: str | None = typer.Option(None, "--arch", help="Architecture (default: this machine's)."),
    key: Path | None = typer.Option(
        None,
        "--key",
        help="The RSA key the packages were signed with; without one only the control and "
        "data members are compared.",
    ),
    keyring: list[Path] = typer.Option([], "--keyring", help="Public key file/dir of the repo."),
    source_cache: Path | None = typer.Option(None, "--source-cache", help="Source cache dir."),
    refetch: bool = typer.Option(
        False, "--refetch", help="Download every source again (an empty cache), not the cache."
    ),
    keep: Path | None = typer.Option(
        None, "--keep", help="Write rebuilt packages that differ to DIR/<arch>/ for inspection."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show the rebuilds' progress."),
    json_output: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Rebuild published packages independently and compare their bytes with the repository.

    Each recipe is built again in fresh temporary directories, without the "already published"
    skip or tests, under another umask and time zone and at a later time, from sources
    re-verified against their pins (or refetched), with the build environment the published
    package recorded. Each package is identical, differs (the differing files named), missing
    (not published) or failed. Exits 1 if any package differs or failed.
    """
    from nanodistro.builder.reproducibility import rebuild_check, summarize
    from nanodistro.cli.build import _config

    paths = _recipes(list(recipes or []), all_recipes, workspace)
    anchor = workspace if workspace is not None else paths[0]
    config = _config(
        recipes=[anchor],
        use_workspace=True,
        arch=arch,
        repo=repo,
        key=key,
        keyring=keyring,
        source_cache=source_cache,
        pipeline_dir=[],
        keep_workspace=False,
        rebuild=True,
        run_tests=False,
        source_date_epoch=None,
        workspace_dir=None,
        step_timeout=None,
        build_timeout=None,
    )
    if config.repo is None:
        raise ConfigError("no repository: pass --repo or run inside a workspace", field="--repo")
    started = time.monotonic()
    checks = []
    for number, path in enumerate(paths, 1):
        err_console.print(
            f"[bold cyan]»[/] [{number}/{len(paths)}] rebuild-check {escape(str(path))}",
            highlight=False,
        )

        def progress(message: str) -> None:
            if verbose:
                err_console.print(f"  [dim]{escape(message)}[/]", highlight=False)

        (check,) = rebuild_check([path], config, refetch=refetch, out_dir=keep, progress=progress)
        checks.append(check)
        if not json_output:
            _print_check(check)
    summary = summarize(checks)
    if json_output:
        print_json(
            {
                "recipes": [c.to_json() for c in checks],
                "total": summary.total,
                "counts": summary.counts,
                "percent": round(summary.percent, 1),
                "ok": summary.ok,
            }
        )
    else:
        console.print(f"{summary.line()} in {time.monotonic() - started:.0f} s", highlight=False)
    if not summary.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("rebuild-check")(rebuild_check_command)
