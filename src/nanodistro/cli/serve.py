"""CLI: ``nanodistro serve`` (the console, the API and the factory loop in one process) and
``nanodistro token create|list|revoke`` (who may write through the API)."""

from __future__ import annotations

from pathlib import Path

import typer

from nanodistro.cli._common import console, err_console, print_json
from nanodistro.cli.factory import WORKSPACE_HELP, load, open_workspace_state

token_app = typer.Typer(
    help="API tokens: writes (triggers, webhooks) need one; reads too with public-reads = false.",
    no_args_is_help=True,
)


def serve_command(
    workspace: Path | None = typer.Argument(None, help=WORKSPACE_HELP),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8080, "--port", min=0, max=65535, help="Port (0: any free one)."),
    interval: str | None = typer.Option(
        None, "--interval", help="Time between scheduled cycles (default: [serve] interval, 10m)."
    ),
    no_loop: bool = typer.Option(
        False, "--no-loop", help="No scheduled cycles: only runs asked for (API, console, hooks)."
    ),
    no_monitor: bool = typer.Option(
        False, "--no-monitor", help="Scheduled cycles skip checking upstreams."
    ),
    jobs: int | None = typer.Option(None, "--jobs", "-j", min=1, help="Jobs at once per cycle."),
    log_level: str = typer.Option("warning", "--log-level", help="uvicorn's log level."),
) -> None:
    """Serve the console (http://HOST:PORT/) and the JSON API (/api, OpenAPI at /docs and
    /openapi.json) while running the factory loop: a cycle at start and then every interval,
    plus whatever the API, the console and webhooks ask for. Stop with Ctrl-C."""
    import uvicorn

    from nanodistro.factory.events import parse_duration
    from nanodistro.factory.state.db import open_state, workspace_state_url
    from nanodistro.web.app import create_app
    from nanodistro.web.context import WebContext
    from nanodistro.web.hooks import services_for
    from nanodistro.web.runs import FactoryRunner, RunStore
    from nanodistro.web.settings import serve_settings

    loaded = load(workspace)
    settings = serve_settings(loaded)
    state = open_workspace_state(loaded)
    assert state is not None
    reads = open_state(workspace_state_url(loaded), read_only=True)
    every = parse_duration(interval, "--interval") if interval else settings.interval
    runs = RunStore(state, loaded.root / ".nanodistro" / "runs", reads)
    runner = FactoryRunner(
        loaded,
        state,
        runs,
        interval=None if no_loop else every,
        monitor_upstreams=not no_monitor,
        concurrency=jobs,
    )
    context = WebContext(loaded, reads, settings, runs, runner)
    context.services.extend(services_for(context))
    app = create_app(context)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False)
    server = uvicorn.Server(config)
    loop_note = "no scheduled cycles" if no_loop else f"a cycle every {every}"
    err_console.print(
        f"serving {loaded.root} on http://{host}:{port}/ ({loop_note}; "
        f"reads {'public' if settings.public_reads else 'need a token'})"
    )
    try:
        server.run()
    finally:
        reads.close()
        state.close()


def token_create(
    name: str = typer.Argument(..., help="A name for the token (who or what uses it)."),
    workspace: Path | None = typer.Argument(None, help=WORKSPACE_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print {name, token} as JSON."),
) -> None:
    """Create a token and print it once: only its sha256 is stored."""
    from nanodistro.web.auth import create_token

    loaded = load(workspace)
    state = open_workspace_state(loaded)
    assert state is not None
    with state:
        token = create_token(state, name)
    if json_out:
        print_json({"name": name, "token": token})
        return
    typer.echo(token)
    err_console.print(
        f"token {name!r} created; it is shown only now. Use it as 'Authorization: Bearer <token>'."
    )


def token_list(
    workspace: Path | None = typer.Argument(None, help=WORKSPACE_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON list."),
) -> None:
    """The tokens: names, when created, last used, revoked (never the secrets)."""
    from nanodistro.web.auth import list_tokens

    loaded = load(workspace)
    state = open_workspace_state(loaded)
    assert state is not None
    with state:
        tokens = list_tokens(state)

    def when(value: object) -> str | None:
        return value.isoformat() if value is not None else None  # type: ignore[attr-defined]

    rows = [
        {
            "name": t.name,
            "created_at": when(t.created_at),
            "last_used": when(t.last_used),
            "revoked_at": when(t.revoked_at),
        }
        for t in tokens
    ]
    if json_out:
        print_json(rows)
        return
    if not rows:
        console.print("no tokens (nanodistro token create NAME)")
    for row in rows:
        status = f"revoked {row['revoked_at']}" if row["revoked_at"] else "active"
        console.print(
            f"{row['name']}\t{status}\tcreated {row['created_at']}\t"
            f"last used {row['last_used'] or 'never'}",
            markup=False,
        )


def token_revoke(
    name: str = typer.Argument(..., help="The token's name."),
    workspace: Path | None = typer.Argument(None, help=WORKSPACE_HELP),
) -> None:
    """Revoke a token: requests with it get 401 from now on."""
    from nanodistro.web.auth import revoke_token

    loaded = load(workspace)
    state = open_workspace_state(loaded)
    assert state is not None
    with state:
        revoke_token(state, name)
    typer.echo(f"token {name!r} revoked")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
    if not token_app.registered_commands:
        token_app.command("create")(token_create)
        token_app.command("list")(token_list)
        token_app.command("revoke")(token_revoke)
    app.add_typer(token_app, name="token")
