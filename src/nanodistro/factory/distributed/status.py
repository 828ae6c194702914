"""``nanodistro factory status``: what the factory's queues, workers and jobs look like now.

Jobs come from the state database (any executor); queues and workers from the broker when the
workspace runs on Celery: message counts per architecture queue, and the workers answering a
broadcast (with the queues they take). A broker that does not answer is reported, not raised:
the database half is still worth showing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from nanodistro.factory.jobs import FAILED, QUEUED, RUNNING, SUCCEEDED
from nanodistro.factory.state.models import JobRow

if TYPE_CHECKING:
    from celery import Celery

    from nanodistro.factory.state.db import State

__all__ = ["FactoryStatus", "broker_status", "job_status"]


@dataclass
class FactoryStatus:
    executor: str
    broker: str | None = None  # without its password
    broker_error: str | None = None
    queues: dict[str, int] = field(default_factory=dict)  # queue -> messages waiting
    workers: dict[str, list[str]] = field(default_factory=dict)  # worker -> queues it takes
    jobs: dict[str, int] = field(default_factory=dict)  # state -> jobs
    running: dict[str, int] = field(default_factory=dict)  # kind -> running jobs
    oldest_waiting: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def job_status(state: State, status: FactoryStatus, now: datetime | None = None) -> None:
    """Jobs by state, running jobs by kind, and the job queued the longest."""
    now = now or datetime.now(UTC)
    with state.session() as session:
        counts = {
            s: n
            for s, n in session.execute(
                select(JobRow.state, func.count()).group_by(JobRow.state)
            ).tuples()
        }
        running = session.execute(
            select(JobRow.kind, func.count()).where(JobRow.state == RUNNING).group_by(JobRow.kind)
        ).tuples()
        oldest = session.scalar(
            select(JobRow).where(JobRow.state == QUEUED).order_by(JobRow.created_at, JobRow.id)
        )
        status.jobs = {s: int(counts.get(s, 0)) for s in (QUEUED, RUNNING, SUCCEEDED, FAILED)}
        status.running = {kind: int(n) for kind, n in sorted(running)}
        if oldest is not None:
            status.oldest_waiting = {
                "id": oldest.id,
                "kind": oldest.kind,
                "key": oldest.key,
                "attempts": oldest.attempts,
                "created_at": oldest.created_at.isoformat().replace("+00:00", "Z"),
                "waiting_seconds": round((now - oldest.created_at).total_seconds(), 1),
            }


def broker_status(
    app: Celery, queues: list[str], status: FactoryStatus, timeout: float = 2.0
) -> None:
    """Messages waiting per queue (``queues`` plus those the workers take) and the workers
    that answer within ``timeout`` seconds."""
    from kombu.exceptions import ChannelError

    try:
        with app.connection_for_read() as connection:
            # once, quickly: a broker that is away is said, not waited for
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=timeout)
            replies = app.control.inspect(timeout=timeout, connection=connection).active_queues()
            status.workers = {
                worker: sorted(q.get("name", "?") for q in taken or [])
                for worker, taken in sorted((replies or {}).items())
            }
            names = sorted({*queues, *(q for taken in status.workers.values() for q in taken)})
            channel = connection.default_channel
            for name in names:
                try:
                    status.queues[name] = int(
                        channel.queue_declare(queue=name, passive=True).message_count
                    )
                except ChannelError:  # never declared: nothing was ever sent to it
                    status.queues[name] = 0
                    channel = connection.channel()  # AMQP closes a channel on NOT_FOUND
    except Exception as error:  # any broker failure is a line of the report
        status.broker_error = (str(error) or type(error).__name__).splitlines()[0]
