"""The Celery app both halves share: broker, result store, queues and the reliability settings.

Nothing here reads a workspace: the control plane passes ``[executor] broker``, a worker its
``--broker``. Celery is imported only by whoever builds an app, so the local executor and every
other command never pay for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nanodistro.errors import ConfigError
from nanodistro.util.host import host_arch

if TYPE_CHECKING:
    from celery import Celery

__all__ = [
    "BROKER_SCHEMES",
    "DEFAULT_BROKER",
    "DEFAULT_VISIBILITY_TIMEOUT",
    "MAX_DELIVERIES",
    "TASK_NAME",
    "check_broker",
    "default_queue",
    "deliveries_key",
    "make_app",
    "results_url",
]

TASK_NAME = "nanodistro.run_job"
DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
# Redis has no consumer-death signal: a message a worker took stays "unacked" until this many
# seconds have passed, then another worker gets it. It must exceed the longest job (a job
# still running when it expires runs twice; the control plane accepts one result), and it is
# how long the jobs of a machine that vanished wait. RabbitMQ redelivers when the connection
# drops and ignores this.
DEFAULT_VISIBILITY_TIMEOUT = 3600
BROKER_SCHEMES = ("redis", "rediss", "amqp", "amqps", "pyamqp", "sentinel")
# The deliveries of one task the control plane reads (more are someone flooding the list)
MAX_DELIVERIES = 16


def deliveries_key(task_id: str) -> str:
    """The result store's list of a task's deliveries, one record appended by each worker as
    it starts it. The task's own record (STARTED, then SUCCESS) keeps only the latest state: a
    delivery that started and finished between two looks of the control plane, or one
    overwritten by the next, would otherwise leave no trace in the event log."""
    return f"nanodistro-deliveries-{task_id}"


def default_queue() -> str:
    """A job goes to the queue named after its architecture; workers listen on their host's."""
    return host_arch()


def check_broker(url: str, field: str = "executor.broker") -> str:
    """A broker URL Celery can use (Redis or RabbitMQ), passed through untouched."""
    scheme, sep, _ = url.partition("://")
    if not sep or scheme not in BROKER_SCHEMES:
        raise ConfigError(
            f"expected a broker URL like redis://host:6379/0 or amqp://user@host//, got {url!r}",
            field=field,
        )
    return url


def results_url(broker: str) -> str:
    """Where outputs wait for the control plane: the same Redis; RabbitMQ has no key store,
    so its outputs travel as messages (Celery's rpc:// store)."""
    return broker if broker.startswith(("redis", "rediss", "sentinel")) else "rpc://"


def make_app(
    broker: str,
    *,
    results: str | None = None,
    visibility_timeout: float = DEFAULT_VISIBILITY_TIMEOUT,
    restore_interval: float | None = None,
) -> Celery:
    """A Celery app for ``broker``; ``results``: the result store (default ``results_url``)."""
    from celery import Celery

    check_broker(broker, "broker")
    app = Celery("nanodistro", broker=broker, backend=results or results_url(broker))
    transport: dict[str, Any] = {"visibility_timeout": visibility_timeout}
    if restore_interval is not None:
        # how often a worker looks for messages whose holder vanished (kombu's default, 10 s
        # times a throttle of 10, suits an hour-long timeout, not a short one)
        transport["unacked_restore_interval"] = restore_interval
        transport["unacked_restore_throttle"] = 1
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # A task is acknowledged when it has finished, not when it starts: a worker killed
        # mid-job leaves its message to be delivered again (rejected at once when only the
        # pool process died, after the visibility timeout when the whole worker did).
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # a waiting job is never held by a busy worker
        task_default_queue=default_queue(),
        task_create_missing_queues=True,
        # The broker may restart: connect and reconnect forever, never give up.
        broker_connection_retry=True,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        broker_transport_options=transport,
        # Outputs stored while the result store restarts are retried for minutes, not lost.
        result_backend_always_retry=True,
        result_backend_max_retries=600,
        result_backend_transport_options={
            "retry_policy": {
                "max_retries": 600,
                "interval_start": 0.2,
                "interval_step": 0.5,
                "interval_max": 1,
            }
        },
        result_expires=7 * 24 * 3600,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
        broker_heartbeat=None,
    )
    return app
