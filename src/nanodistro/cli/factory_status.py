"""CLI: ``nanodistro factory status`` (registered by cli/factory.py): queues, workers seen,
jobs by state and the oldest waiting job."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from nanodistro.cli._common import console, escape, print_json
from nanodistro.cli.factory import WORKSPACE_HELP, load, open_workspace_state

if TYPE_CHECKING:
    from nanodistro.factory.distributed.status import FactoryStatus


def status_command(
    workspace: Path | None = typer.Argument(None, help=WORKSPACE_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print the status as JSON."),
    timeout: float = typer.Option(
        2.0, "--timeout", min=0.1, help="Seconds to wait for workers to answer."
    ),
) -> None:
    """Show the factory's queues, the workers that answer, jobs by state and the oldest
    waiting job. Exits 1 when the broker does not answer."""
    from kombu.utils.url import maybe_sanitize_url

    from nanodistro.factory.distributed.status import FactoryStatus, broker_status, job_status

    loaded = load(workspace)
    status = FactoryStatus(executor=loaded.executor_kind)
    state = open_workspace_state(loaded, create=False)
    if state is not None:
        with state:
            job_status(state, status)
    if loaded.executor_kind == "celery" and loaded.broker:
        from nanodistro.factory.distributed.app import make_app

        status.broker = maybe_sanitize_url(loaded.broker)
        broker_status(make_app(loaded.broker), list(loaded.archs), status, timeout=timeout)
    if json_out:
        print_json(status.to_json())
    else:
        _print(status)
    if status.broker_error:
        raise typer.Exit(1)


def _print(status: FactoryStatus) -> None:
    where = f" ({escape(status.broker)})" if status.broker else ""
    console.print(f"executor  {status.executor}{where}")
    if status.broker_error:
        console.print(f"[bold red]broker    not answering: {escape(status.broker_error)}[/]")
    elif status.executor == "celery":
        queues = ", ".join(f"{q} {n} waiting" for q, n in status.queues.items()) or "none"
        console.print(f"queues    {escape(queues)}")
        workers = ", ".join(
            f"{w} ({', '.join(q) or 'no queues'})" for w, q in status.workers.items()
        )
        console.print(f"workers   {escape(workers) or 'none answered'}")
    jobs = ", ".join(f"{s} {n}" for s, n in status.jobs.items())
    console.print(f"jobs      {jobs or 'none recorded'}")
    if status.running:
        console.print("running   " + ", ".join(f"{k} {n}" for k, n in status.running.items()))
    oldest = status.oldest_waiting
    if oldest:
        console.print(
            f"oldest    {oldest['kind']} job {oldest['id']} ({oldest['key'][:12]}), waiting "
            f"{oldest['waiting_seconds']:.0f} s, {oldest['attempts']} attempts so far"
        )


def register_status(factory_app: typer.Typer) -> None:
    factory_app.command("status")(status_command)
