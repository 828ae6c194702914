"""CLI: ``nanodistro monitor`` (which recipes have a newer upstream) and ``nanodistro bump``."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from nanodistro.cli._common import console, err_console, escape, print_json
from nanodistro.errors import ConfigError
from nanodistro.monitor.defaults import RECIPE_TIMEOUT, REQUEST_TIMEOUT

if TYPE_CHECKING:
    from rich.table import Table

    from nanodistro.monitor.models import CheckResult

# The monitor engine (pydantic models, httpx) and Rich's Table are imported where used: the
# option defaults come from monitor/defaults.py, so `monitor --help` and `bump --help` load
# neither (tests/test_cli_startup.py).

EXIT_UP_TO_DATE = 0
EXIT_UPDATES = 10
EXIT_ERRORS = 1


def _styles() -> dict[str, str]:
    from nanodistro.monitor import models as m

    return {
        m.UPDATE: "bold yellow",
        m.RETAGGED: "bold magenta",
        m.ERROR: "red",
        m.UP_TO_DATE: "green",
    }


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else ""


def _table(results: list[CheckResult]) -> Table:
    from rich.table import Table

    from nanodistro.monitor import models as m

    table = Table(title="upstream releases")
    rows: list[tuple[CheckResult, str, str]] = []
    for r in sorted(results, key=lambda r: (r.status != m.UPDATE, r.status, r.name)):
        status = r.status
        if r.status == m.UPDATE and r.next_version and r.next_version != r.latest:
            status = f"update to {r.next_version}"
        note = "see below" if r.status in (m.ERROR, m.RETAGGED) else (r.message or "")
        if r.manual and r.status == m.UPDATE:
            note = "manual: review by hand"
        rows.append((r, status, note))

    def widest(header: str, values: list[str]) -> int:
        return max([len(header), *map(len, values)])

    # The note gives way first: on a narrow (or non-terminal, 80-column) console the names,
    # versions and statuses stay whole and the note is cut.
    for header, values in (
        ("recipe", [r.name for r, _, _ in rows]),
        ("current", [r.current for r, _, _ in rows]),
        ("latest", [r.latest or "" for r, _, _ in rows]),
        ("released (UTC)", [_when(r.latest_published_at) for r, _, _ in rows]),
        ("status", [status for _, status, _ in rows]),
    ):
        table.add_column(header, no_wrap=True, min_width=widest(header, values))
    table.add_column("note", overflow="ellipsis", no_wrap=True, max_width=40)
    styles = _styles()
    for r, status, note in rows:
        style = styles.get(r.status, "dim")
        table.add_row(
            escape(r.name),
            escape(r.current),
            escape(r.latest or ""),
            _when(r.latest_published_at),
            f"[{style}]{escape(status)}[/]",
            escape(note),
        )
    return table


def monitor(
    paths: list[Path] = typer.Argument(
        None, help="Recipe files or directories of recipes (default: the current directory)."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON document."),
    concurrency: int = typer.Option(16, "--concurrency", "-j", min=1, help="Recipes in flight."),
    per_host: int = typer.Option(4, "--per-host", min=1, help="Requests in flight per host."),
    workers: int = typer.Option(
        0,
        "--workers",
        min=0,
        help="Processes sharing the recipes (0: one per CPU; used from 500 recipes on).",
    ),
    cache_dir: Path = typer.Option(
        None, "--cache-dir", help="HTTP cache and schedule state [~/.cache/nanodistro/monitor]."
    ),
    force: bool = typer.Option(False, "--force", help="Ignore update.schedule periods."),
    request_timeout: float = typer.Option(
        REQUEST_TIMEOUT,
        "--request-timeout",
        min=0.1,
        help="Seconds one request may take in all (retries and every read included).",
    ),
    deadline: float | None = typer.Option(
        None,
        "--deadline",
        "--recipe-timeout",
        min=0.1,
        help="Seconds one recipe's check may take in all; past it the recipe is an error "
        f"(default: monitor.deadline in nanodistro.toml, else {RECIPE_TIMEOUT:g}).",
    ),
    insecure: bool = typer.Option(
        False, "--insecure", help="Allow plain http to hosts other than loopback."
    ),
) -> None:
    """Check every recipe's upstream (its update: block) for newer releases.

    Exit status: 0 = everything up to date (or disabled / not due on its schedule),
    10 = at least one recipe has a newer release or a re-tagged one,
    1 = errors and nothing to update. A failing upstream is reported for its recipe only.
    Upstream URLs can be redirected with NANODISTRO_{PYPI,NPM,GITHUB_API,GITLAB_API,
    RELEASE_MONITORING}_URL; GITHUB_TOKEN, GITLAB_TOKEN and RELEASE_MONITOR_TOKEN are used if set.
    """
    from nanodistro.monitor import models as m
    from nanodistro.monitor.check import check_paths, default_cache_dir, exit_status

    targets = paths or [Path(".")]
    if deadline is None:
        deadline = _workspace_deadline(targets[0]) or RECIPE_TIMEOUT
    done = 0

    def progress(result: CheckResult) -> None:
        nonlocal done
        done += 1
        if not json_output and err_console.is_terminal:
            err_console.print(f"[dim]{done} checked: {escape(result.name)} {result.status}[/]")

    results = check_paths(
        targets,
        concurrency=concurrency,
        per_host=per_host,
        workers=workers or os.cpu_count() or 1,
        cache_dir=cache_dir or default_cache_dir(),
        progress=progress,
        force=force,
        request_timeout=request_timeout,
        recipe_timeout=deadline,
        insecure=insecure,
    )
    status = exit_status(results)
    if json_output:
        print_json(
            {
                "results": [r.to_json() for r in results],  # recipe order, as found
                "updates": sum(r.status in (m.UPDATE, m.RETAGGED) for r in results),
                "errors": sum(r.status == m.ERROR for r in results),
                "exit_status": status,
            }
        )
    else:
        console.print(_table(results))
        for r in results:
            if r.status in (m.ERROR, m.RETAGGED):
                style = _styles()[r.status]
                console.print(
                    f"[{style}]{escape(r.name)}[/]: {escape(r.message or '')}",
                    soft_wrap=True,
                    highlight=False,
                )
        updates = sum(r.status == m.UPDATE for r in results)
        errors = sum(r.status == m.ERROR for r in results)
        console.print(f"{len(results)} recipes, {updates} with updates, {errors} errors")
    raise typer.Exit(status)


def _workspace_deadline(path: Path) -> float | None:
    """``[monitor] deadline`` of the workspace ``path`` is in (or is), if any."""
    from nanodistro.factory.workspace import find_workspace, load_workspace

    found = find_workspace(path) if path.exists() else None
    return load_workspace(found).monitor_deadline if found is not None else None


def bump(
    # no exists=True: Click's usage box is not the one-line error; bump_recipe names the file
    recipe: Path = typer.Argument(..., help="The recipe file to bump."),
    version: str = typer.Argument(None, help="Target version (default: the latest upstream)."),
    epoch: bool = typer.Option(
        False,
        "--epoch",
        help="Rebuild-only bump: same version, epoch + 1, no upstream version lookup (sources "
        "are fetched as for any bump; a changed checksum is listed in the changes).",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the diff; change nothing."),
    source_cache: Path = typer.Option(
        None,
        "--source-cache",
        help="Where downloaded sources are kept [the workspace's, else "
        "~/.cache/nanodistro/sources, as `build`].",
    ),
    cache_dir: Path = typer.Option(None, "--cache-dir", help="Monitor cache (see `monitor`)."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Move a recipe to a new upstream version.

    Writes the version (as a string) and resets the epoch to 0, recomputes fetch checksums and
    git-checkout commits from the new release, and checks each patch against the new source:
    patches upstream already contains are removed (file deleted); a patch that no longer
    applies fails the bump and leaves the recipe untouched. Comments and layout are kept.

    With --epoch, the version stays and the epoch goes up by one (a rebuild of the same
    upstream release, as the factory's epoch bumps). Nothing is committed to git.
    """

    from nanodistro.monitor.bump import bump_recipe
    from nanodistro.monitor.check import default_cache_dir

    def progress(message: str) -> None:
        if not json_output:
            err_console.print(f"[dim]{escape(message)}[/]")

    if epoch:
        if version is not None:
            raise ConfigError(
                f"--epoch keeps the version: give either VERSION ({version}) or --epoch",
                where=str(recipe),
            )
        version = _current_version(recipe)
    # as `build`: the nanodistro.toml above the recipe gives the source cache and mirrors
    from nanodistro.factory.workspace import find_workspace, load_workspace

    mirrors: dict[str, str] = {}
    found = find_workspace(recipe) if recipe.exists() else None
    if found is not None:
        workspace = load_workspace(found)
        mirrors = dict(workspace.mirrors)
        source_cache = source_cache or workspace.source_cache
    result = bump_recipe(
        recipe,
        version,
        dry_run=dry_run,
        source_cache=source_cache,
        cache_dir=cache_dir or default_cache_dir(),
        progress=progress,
        mirrors=mirrors,
    )
    if json_output:
        print_json(result.to_json())
        return
    if dry_run:
        typer.echo(result.diff, nl=False)
        return
    for change in result.changes:
        typer.echo(change)
    typer.echo(
        f"{recipe}: {result.old_version}-r{result.old_epoch} -> "
        f"{result.new_version}-r{result.new_epoch}"
    )


def _current_version(recipe: Path) -> str:
    """The recipe's ``package.version``, for an epoch bump (factory/building.epoch_bump)."""
    from nanodistro.recipe.model import load_recipe

    if not recipe.is_file():
        raise ConfigError("no such recipe file", where=str(recipe))
    return load_recipe(recipe).package.version


def register(app: typer.Typer) -> None:
    """Add ``monitor`` and ``bump`` to the root app."""
    app.command("monitor")(monitor)
    app.command("bump")(bump)
