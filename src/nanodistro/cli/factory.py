"""CLI: the factory's commands — ``nanodistro events`` (the event log), and the ``factory`` group.

How to add a command here: a top-level one (``nanodistro freshness``) is a function registered in
``register`` below, and its name goes into ``COMMAND_MODULES["factory"]`` in ``cli/__init__.py``
(tests/test_cli_basics.py checks that the two agree); a subcommand of ``nanodistro factory``
(``factory run``) is ``@factory_app.command("run")``, and then ``"factory"`` goes into that tuple.
Import engines inside the command functions, so ``nanodistro events`` stays quick to start.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from nanodistro.cli._common import console, escape, print_json, workspace_file
from nanodistro.errors import ConfigError

if TYPE_CHECKING:
    from nanodistro.factory.state import State
    from nanodistro.factory.workspace import Workspace

factory_app = typer.Typer(
    name="factory",
    help="Run the factory: monitor, bump, build, test, publish, promote.",
    no_args_is_help=True,
)

WORKSPACE_HELP = (
    "Workspace directory or nanodistro.toml (default: the nearest one, else ./examples)."
)


def load(workspace: Path | None) -> Workspace:
    from nanodistro.factory.workspace import load_workspace

    return load_workspace(workspace_file(workspace))


def open_workspace_state(loaded: Workspace, *, create: bool = True) -> State | None:
    """The workspace's state database, migrated; None when ``create`` is false and the default
    SQLite file does not exist yet (a read-only command then has nothing to read)."""
    from nanodistro.factory.state import open_state, workspace_state_url

    default_file = loaded.root / ".nanodistro" / "state.db"
    if not create and loaded.state_url is None and not default_file.is_file():
        return None
    return open_state(workspace_state_url(loaded))


def events(
    workspace: Path | None = typer.Argument(None, help=WORKSPACE_HELP),
    subject: str | None = typer.Option(
        None, "--subject", help="Only this subject (recipe:zlib), or a whole kind (recipe:)."
    ),
    since: str | None = typer.Option(
        None, "--since", help="Only events at or after: 10m, 2h, 1d ago, or an ISO-8601 time (UTC)."
    ),
    types: list[str] | None = typer.Option(
        None, "--type", help="Only events of this type (repeatable), e.g. build-failed."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON list, oldest first."),
) -> None:
    """Print the factory's event log, oldest first."""
    from nanodistro.factory.events import check_type, parse_since, query

    # Check the options before touching the database: a typo is an error, not an empty list.
    since_time = parse_since(since) if since is not None else None
    for type_ in types or []:
        check_type(type_, "--type")
    state = open_workspace_state(load(workspace), create=False)
    found = []
    if state is not None:
        with state:
            found = query(state, subject=subject, since=since_time, types=types or None)
    if json_out:
        print_json([event.to_json() for event in found])
        return
    from rich.table import Table  # Rich: only when a table is printed

    table = Table(title=f"Events ({len(found)})", title_justify="left")
    for column in ("time (UTC)", "type", "subject", "payload"):
        table.add_column(column)
    for event in found:
        table.add_row(
            event.time.strftime("%Y-%m-%d %H:%M:%S"),
            event.type,
            escape(event.subject),
            escape(json.dumps(event.payload, sort_keys=True)) if event.payload else "",
        )
    console.print(table)


RUNTIMES = {"runc": "runc", "bwrap": "bubblewrap", "bubblewrap": "bubblewrap"}


def bisect_command(
    image: str = typer.Argument(
        ..., help="apko image config: a path, or a name in the workspace's images/."
    ),
    command: list[str] = typer.Argument(
        ..., help="The command run in each image (after --); exit status 0 passes."
    ),
    good: str = typer.Option(
        ..., "--good", help="Good image: layout DIR, DIR:TAG, oci-archive or lock file."
    ),
    bad: str = typer.Option(..., "--bad", help="Bad image, same kinds."),
    runtime: str | None = typer.Option(
        None, "--runtime", help="runc or bwrap (default: runc when installed)."
    ),
    arch: str | None = typer.Option(
        None, "--arch", help="Bisect this architecture (default: the host's)."
    ),
    repo: list[str] = typer.Option([], "--repo", help="Extra repository (directory or URL)."),
    keyring: list[Path] = typer.Option(
        [], "--keyring", help="Extra trusted key directory or file."
    ),
    binary: str | None = typer.Option(
        None,
        "--binary",
        help="Bind-mount this host test binary at /.smoke/busybox (busybox-static); default: "
        "the config's dev.nanodistro.smoke.binary annotation.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the steps and verdict as JSON."),
    use_workspace: bool = typer.Option(
        True,
        "--workspace/--no-workspace",
        help="Take the repository and keys from the nanodistro.toml above the config.",
    ),
) -> None:
    """Name the one package change between two images that makes CMD fail, in O(log n) builds."""
    from nanodistro.cli._common import source_date_epoch
    from nanodistro.cli.image import _workspace_defaults
    from nanodistro.factory.bisect import BisectRequest, Step, Unit, bisect
    from nanodistro.factory.smoke import BINARY, SMOKE_BINARIES
    from nanodistro.imageconfig import load_config

    config = _image_config(image)
    loaded = load_config(config)
    _, repo, keyring = _workspace_defaults(config, use_workspace, [], repo, keyring)
    if runtime is not None and runtime not in RUNTIMES:
        raise ConfigError(f"unknown runtime {runtime!r}; known: runc, bwrap", field="--runtime")
    binary = binary or loaded.config.annotations.get(BINARY)
    if binary is not None and binary not in SMOKE_BINARIES:
        raise ConfigError(
            f"unknown test binary {binary!r}; known: {', '.join(SMOKE_BINARIES)}",
            field="--binary",
        )
    request = BisectRequest(
        loaded=loaded,
        good=good,
        bad=bad,
        command=list(command),
        runtime=RUNTIMES[runtime] if runtime else None,
        arch=arch,
        repositories=list(repo),
        keyring_paths=list(keyring),
        binary=SMOKE_BINARIES[binary] if binary else None,
        source_date_epoch=source_date_epoch(None),
    )

    def show(step: Step) -> None:
        if json_out:
            return
        what = "given image" if not step.built else f"good + the first {len(step.applied)} changes"
        verdict = "pass" if step.passed else f"FAIL (exit {step.exit_code})"
        typer.echo(f"{step.label:>7}  {step.digest}  {what}: {verdict}")

    def plan(units: list[Unit], notes: list[str]) -> None:
        if json_out:
            return
        changes = sum(len(unit.changes) for unit in units)
        typer.echo(f"{changes} changes in {len(units)} steps, each after what it needs:")
        for number, unit in enumerate(units, start=1):
            typer.echo(f"  {number:>3}. {unit}")
            for reason in unit.reasons:
                typer.echo(f"       {reason}")
        for note in notes:
            typer.echo(f"note: {note}")

    result = bisect(request, on_plan=plan, on_step=show)
    if json_out:
        print_json(result.to_json())
        return
    together = " (applied together)" if len(result.culprit.changes) > 1 else ""
    typer.echo(f"breaks: {result.culprit}{together}")
    typer.echo(f"{result.builds} image builds")


def _image_config(image: str) -> Path:
    """A config path as given, else ``images/<name>.yaml`` of the nearest workspace."""
    from nanodistro.factory.workspace import find_workspace, load_workspace

    path = Path(image)
    if path.is_file():
        return path
    found = find_workspace(Path.cwd())
    if found is not None:
        images = load_workspace(found).images_dir
        for candidate in (images / image, images / f"{image}.yaml"):
            if candidate.is_file():
                return candidate
    raise ConfigError(
        "no such image config (a file, or a name in the workspace's images/)", where=image
    )


def register(app: typer.Typer) -> None:
    """Add ``events`` (and the ``factory`` group, once it has commands) to the root app."""
    app.command("events")(events)
    app.command("bisect")(bisect_command)
    from nanodistro.cli.factory_loop import register_loop_commands

    register_loop_commands(factory_app, app)
    from nanodistro.cli.factory_status import register_status

    register_status(factory_app)
    if factory_app.registered_commands or factory_app.registered_groups:
        app.add_typer(factory_app, name="factory")
