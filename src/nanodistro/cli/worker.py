"""CLI: ``nanodistro worker`` — a Celery worker that runs the factory's build, test, image and
smoke jobs for a control plane (``[executor] kind = "celery"``).

A worker needs the broker URL, its name and its token (``nanodistro worker-token create NAME``
on the control plane prints it); it reads no workspace and holds no signing key and no state
database URL: it returns sealed outputs, the control plane verifies, signs and publishes.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import typer

from nanodistro.errors import ConfigError

_TOKEN = re.compile(r"[0-9a-f]{64}")
POOLS = ("prefork", "threads", "solo")


def _token(path: Path) -> str:
    try:
        info = path.stat()
        text = path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise ConfigError(f"cannot read the token: {error.strerror}", where=str(path)) from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"the token file is readable by others (mode {stat.S_IMODE(info.st_mode):04o}); "
            "chmod 600 it",
            where=str(path),
        )
    if not _TOKEN.fullmatch(text):
        raise ConfigError(
            "expected the 64 hex digits 'nanodistro worker-token create' printed",
            where=str(path),
        )
    return text


def worker(
    name: str = typer.Option(
        ..., "--name", help="This worker's name, as registered on the control plane."
    ),
    token_file: Path = typer.Option(
        ..., "--token-file", help="File holding the worker's token (mode 0600)."
    ),
    queue: list[str] = typer.Option(
        [],
        "--queue",
        help="Queue to take jobs from, an architecture (repeatable; default: this host's).",
    ),
    concurrency: int = typer.Option(1, "--concurrency", min=1, help="Jobs run at once."),
    broker: str = typer.Option(
        "redis://127.0.0.1:6379/0",
        "--broker",
        envvar="NANODISTRO_BROKER",
        help="Broker URL: redis://host:6379/0 or amqp://user:pass@host// ($NANODISTRO_BROKER).",
    ),
    cache: Path | None = typer.Option(
        None,
        "--cache",
        help="Kept between jobs: fetched sources (default ~/.cache/nanodistro/worker).",
    ),
    work_dir: Path | None = typer.Option(
        None, "--work-dir", help="Per-job folders, removed after each job (default: <cache>/work)."
    ),
    pool: str = typer.Option(
        "prefork",
        "--pool",
        help="prefork (a process per job; a killed one's job is redelivered), threads or solo.",
    ),
    visibility_timeout: float = typer.Option(
        3600.0,
        "--visibility-timeout",
        min=1.0,
        help="Redis: seconds before the job of a worker that vanished goes to another "
        "(longer than the longest job).",
    ),
    loglevel: str = typer.Option("INFO", "--loglevel", help="Celery's log level."),
) -> None:
    """Run jobs from the broker until stopped (SIGTERM finishes the running jobs first)."""
    from nanodistro.factory.distributed.app import check_broker, default_queue, make_app
    from nanodistro.factory.distributed.task import WorkerIdentity, register_task

    if pool not in POOLS:
        raise ConfigError(f"unknown pool {pool!r}; known: {', '.join(POOLS)}", field="--pool")
    check_broker(broker, "--broker")
    token = _token(token_file)
    cache_dir = (cache or Path.home() / ".cache" / "nanodistro" / "worker").resolve()
    work = (work_dir or cache_dir / "work").resolve()
    for folder in (cache_dir, work):
        folder.mkdir(parents=True, exist_ok=True)
    from nanodistro.factory.distributed import noop

    if os.environ.get(noop.TEST_KINDS_ENV) == "1":  # the tests' and bench's trivial kind only
        noop.register()

    app = make_app(
        broker,
        visibility_timeout=visibility_timeout,
        restore_interval=max(1.0, min(10.0, visibility_timeout / 4)),
    )
    register_task(app, WorkerIdentity(name, token, work, cache_dir))
    queues = ",".join(dict.fromkeys(q for item in queue for q in item.split(",") if q)) or (
        default_queue()
    )
    os.environ.pop("NANODISTRO_BROKER", None)  # nothing a job runs needs to see it
    app.worker_main(
        [
            "worker",
            f"--hostname={name}@%h",
            f"--queues={queues}",
            f"--concurrency={concurrency}",
            f"--pool={pool}",
            f"--loglevel={loglevel}",
            "--without-gossip",
            "--without-mingle",
            "-O",
            "fair",
        ]
    )


def register(app: typer.Typer) -> None:
    """Add ``worker`` to the root app."""
    app.command("worker")(worker)
