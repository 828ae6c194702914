"""The one task a worker runs: a job's worker function on its payload, the output sealed.

A worker holds its name, its token and two folders, nothing else: no workspace, no signing key,
no state database. The output (or the error) goes back sealed with the worker's token for this
job and attempt (factory/remote), so the control plane can tell which worker said it and that
it is about this job.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nanodistro.errors import NanodistroError
from nanodistro.factory.distributed.app import TASK_NAME, deliveries_key

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["STARTED", "WorkerIdentity", "execute", "record_delivery", "register_task"]

# the state a worker reports when it starts a delivery; its meta names the worker
STARTED = "STARTED"
_KEY = re.compile(r"[0-9a-f]{64}")  # a job key: the SHA-256 of its inputs (factory/jobs.py)


@dataclass(frozen=True)
class WorkerIdentity:
    name: str
    token: str
    work_dir: Path
    cache_dir: Path


def execute(message: dict[str, Any], identity: WorkerIdentity) -> dict[str, Any]:
    """Run ``message`` (``key``, ``kind``, ``payload``, ``attempt``); the sealed envelope:
    ``{"output": ...}`` or ``{"error": ..., "transient": bool}``, with ``payload``: the
    payload's digest (``payload_digest``)."""
    from nanodistro.factory.jobs import TRANSIENT_ERRORS
    from nanodistro.factory.remote import WORKER_FUNCTIONS, WorkerContext, seal
    from nanodistro.factory.remote.channel import payload_digest

    key, kind = str(message.get("key", "")), str(message.get("kind", ""))
    attempt = int(message.get("attempt", 0))
    payload = dict(message.get("payload") or {})
    envelope: dict[str, Any]
    function = WORKER_FUNCTIONS.get(kind)
    work = identity.work_dir / f"{key[:16]}-{attempt}-{os.getpid()}"
    if not _KEY.fullmatch(key):
        # anyone on the broker can queue a task: a key such as "/etc/x" would put the job's
        # folder (made, filled, then removed) outside the work folder
        envelope = {"error": f"expected a job key of 64 hex digits, got {key[:80]!r}",
                    "transient": False}  # fmt: skip
    elif function is None:
        known = ", ".join(sorted(WORKER_FUNCTIONS))
        envelope = {"error": f"this worker runs no {kind!r} jobs (it runs: {known})",
                    "transient": False}  # fmt: skip
    else:
        work.mkdir(parents=True, exist_ok=True)
        context = WorkerContext(name=identity.name, work_dir=work, cache_dir=identity.cache_dir)
        try:
            envelope = {"output": function(dict(payload), context)}
        except TRANSIENT_ERRORS as error:
            envelope = {"error": str(error), "transient": True}
        except NanodistroError as error:
            envelope = {"error": str(error), "transient": False}
        except Exception as error:  # a bug in one worker function fails its job, not the worker
            envelope = {
                "error": f"unexpected failure on worker {identity.name} (a bug; please report "
                f"it): {error}",
                "transient": False,
            }
        finally:
            shutil.rmtree(work, ignore_errors=True)
    # what this worker was asked to do, under the seal: the control plane refuses an output
    # for a payload it did not send
    envelope["payload"] = payload_digest(payload)
    sealed = seal(envelope, job_key=key, attempt=attempt, worker=identity.name,
                  token=identity.token)  # fmt: skip
    return {"sealed": sealed}


def record_delivery(backend: Any, task_id: str, record: dict[str, Any]) -> None:
    """Append ``record`` to the task's list of deliveries (``deliveries_key``) when the result
    store is Redis, retried across a restart as results are; elsewhere (RabbitMQ's rpc://) the
    STARTED state alone tells the control plane."""
    client = getattr(backend, "client", None)
    ensure = getattr(backend, "ensure", None)
    if client is None or ensure is None or not hasattr(client, "rpush"):
        return
    key = deliveries_key(task_id)
    expires = backend.expires or 7 * 24 * 3600
    seconds = int(expires.total_seconds() if hasattr(expires, "total_seconds") else expires)

    def push() -> None:
        with client.pipeline() as pipe:
            pipe.rpush(key, json.dumps(record))
            pipe.expire(key, seconds)
            pipe.execute()

    ensure(push, ())


def register_task(app: Celery, identity: WorkerIdentity) -> None:
    """Register the task on a worker's app: it records the delivery (which worker, redelivered
    or not) in the task's list of deliveries and as its STARTED state, then runs it."""

    @app.task(name=TASK_NAME, bind=True, acks_late=True, reject_on_worker_lost=True)
    def run_job(self: Any, message: dict[str, Any]) -> dict[str, Any]:
        delivery = getattr(self.request, "delivery_info", None) or {}
        meta = {
            "worker": identity.name,
            "pid": os.getpid(),
            "redelivered": bool(delivery.get("redelivered")),
        }
        # the list first: once STARTED is visible, the record the control plane reads is there
        record_delivery(self.backend, str(self.request.id), meta)
        self.update_state(state=STARTED, meta=meta)
        return execute(message, identity)
