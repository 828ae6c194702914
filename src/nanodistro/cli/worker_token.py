"""CLI: ``nanodistro worker-token create|list|revoke`` — the workers whose output the control plane
trusts (factory/remote/channel.py): a token per worker, derived from the workspace's worker
secret, shown once; a revoked worker's output is refused."""

from __future__ import annotations

from pathlib import Path

import typer

from nanodistro.cli._common import console, err_console, print_json
from nanodistro.cli.factory import WORKSPACE_HELP, load

worker_token_app = typer.Typer(
    help="Worker tokens: a Celery worker seals each job's output with its own token.",
    no_args_is_help=True,
)


def _registry(workspace: Path | None):  # type: ignore[no-untyped-def]
    from nanodistro.factory.remote.channel import WorkerRegistry

    return WorkerRegistry.for_workspace(load(workspace).root)


def worker_token_create(
    name: str = typer.Argument(..., help="The worker's name (letters, digits, '.', '_', '-')."),
    workspace: Path | None = typer.Argument(None, help=WORKSPACE_HELP),
) -> None:
    """Register a worker and print its token (only now: it is not stored, and a lost token
    means a new worker name)."""
    token = _registry(workspace).create(name)
    typer.echo(token)
    err_console.print(
        f"worker {name!r} created; its token is shown only now. Start the worker with this "
        "name and token (nanodistro worker)."
    )


def worker_token_list(
    workspace: Path | None = typer.Argument(None, help=WORKSPACE_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON list."),
) -> None:
    """The workers: names, when created, revoked (never the tokens)."""
    workers = _registry(workspace).workers()
    rows = [
        {"name": w.name, "created": w.created, "revoked": w.revoked}
        for w in sorted(workers.values(), key=lambda w: w.name)
    ]
    if json_out:
        print_json(rows)
        return
    if not rows:
        console.print("no workers (nanodistro worker-token create NAME)")
    for row in rows:
        status = f"revoked {row['revoked']}" if row["revoked"] else "active"
        console.print(f"{row['name']}\t{status}\tcreated {row['created']}", markup=False)


def worker_token_revoke(
    name: str = typer.Argument(..., help="The worker's name."),
    workspace: Path | None = typer.Argument(None, help=WORKSPACE_HELP),
) -> None:
    """Revoke a worker: its output is refused from now on (its jobs are not published)."""
    _registry(workspace).revoke(name)
    typer.echo(f"worker {name!r} revoked")


def register(app: typer.Typer) -> None:
    if not worker_token_app.registered_commands:
        worker_token_app.command("create")(worker_token_create)
        worker_token_app.command("list")(worker_token_list)
        worker_token_app.command("revoke")(worker_token_revoke)
    app.add_typer(worker_token_app, name="worker-token")
