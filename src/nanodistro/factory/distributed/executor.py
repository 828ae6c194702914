"""CeleryExecutor: LocalExecutor's interface and JobStore, the work done by Celery workers.

Per claimed job (one attempt in the store) the control plane prepares the payload and sends
one task, ``{key, kind, payload, attempt}``, to the queue of the job's architecture. It then
polls the result store: each delivery a worker starts is recorded as a ``job-attempt`` event
(worker, attempt, delivery), so a job redelivered after a worker died shows both. A worker
appends each delivery to the task's list of deliveries (app.deliveries_key) as it starts it, and
the control plane reads the whole list when it sees a new delivery and when the result arrives:
an event never depends on a poll catching a short-lived STARTED state. A sealed
output is unsealed (for this job, this attempt and the payload sent: anyone on the broker can
queue a task or write a result) and accepted only while the job's row is still ``running``
under this control plane for that attempt, so a result is accepted (signed, published) once,
and a late, duplicate or foreign one is dropped with a ``job-result-dropped`` event.

The broker and the state database may restart under a run: sending, polling and every write to
the store are retried until they answer again (for ``outage`` seconds).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from nanodistro.errors import (
    ConfigError,
    NanodistroError,
    StateError,
    TransientError,
    TrustError,
)
from nanodistro.factory import events
from nanodistro.factory.distributed.app import (
    MAX_DELIVERIES,
    TASK_NAME,
    default_queue,
    deliveries_key,
)
from nanodistro.factory.distributed.task import STARTED
from nanodistro.factory.jobs import (
    RUNNING,
    TRANSIENT_ERRORS,
    Job,
    JobSpec,
    JobStore,
    process_owner,
)

if TYPE_CHECKING:
    from celery import Celery

__all__ = ["CeleryExecutor", "Kind", "job_queue"]

T = TypeVar("T")


class Kind(Protocol):
    """The control plane's half of a job kind (factory/remote ``ControlKind``)."""

    @property
    def prepare(self) -> Callable[[dict[str, Any]], dict[str, Any]]: ...

    @property
    def accept(self) -> Callable[[dict[str, Any], dict[str, Any], str], dict[str, Any]]: ...


def job_queue(job: Job) -> str:
    """The queue a job goes to: its architecture (inputs ``arch``), else the host's."""
    arch = job.inputs.get("arch")
    return arch if isinstance(arch, str) and arch else default_queue()


def _outage_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean "the broker or database is away", retried rather than failing jobs."""
    from kombu.exceptions import OperationalError as KombuOperationalError
    from sqlalchemy.exc import DBAPIError

    errors: list[type[BaseException]] = [KombuOperationalError, DBAPIError, OSError]
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        errors += [RedisConnectionError, RedisTimeoutError]
    except ImportError:  # RabbitMQ only
        pass
    try:
        from celery.exceptions import BackendError

        errors.append(BackendError)
    except ImportError:
        pass
    return tuple(errors)


def _decoded(decode: Callable[[Any], Any], value: Any) -> dict[str, Any]:
    """A task's record in the result store. Every worker can write there: a record that is
    not JSON, too deep or not an object is an output refused (dropped, the attempt failed as
    a forged one is), not an exception that stops the control plane's run."""
    from kombu.exceptions import DecodeError

    try:
        meta = decode(value)
    except (DecodeError, TypeError, ValueError) as error:
        return {"status": "SUCCESS", "result": {"undecodable": str(error)[:200]}}
    return meta if isinstance(meta, dict) else {"status": "SUCCESS", "result": None}


def _delivery(meta: Any) -> tuple[str, int] | None:
    """A delivery's identity, (worker, pid), from a record a worker wrote: any JSON at all."""
    if not isinstance(meta, dict):
        return None
    pid = meta.get("pid")
    return (str(meta.get("worker"))[:100], pid if type(pid) is int else 0)


@dataclass
class _Flight:
    job: Job
    task_id: str
    deliveries: list[tuple[str, int]] = field(default_factory=list)  # (worker, pid) seen
    payload: str | None = None  # the digest of the payload sent (remote.payload_digest)


class CeleryExecutor:
    """Runs jobs on Celery workers, at most ``in_flight`` sent at a time (each worker takes
    one at a time: a long queue stays in the state database, not in the broker)."""

    def __init__(
        self,
        store: JobStore,
        kinds: Mapping[str, Kind],
        app: Celery,
        *,
        token_for: Callable[[str], str],
        in_flight: int = 256,
        poll: float = 0.05,
        outage: float = 600.0,
        say: Callable[[str], None] | None = None,
        queue_for: Callable[[Job], str] = job_queue,
    ) -> None:
        self.store = store
        self.kinds = dict(kinds)
        self.app = app
        self.token_for = token_for
        self.in_flight = max(1, in_flight)
        self.poll = poll
        self.outage = outage
        self.say = say or (lambda _message: None)
        self.queue_for = queue_for
        self.owner = process_owner()
        self._errors = _outage_errors()
        self._down_since: float | None = None

    # -- retries across broker and database restarts -------------------------------------

    def _retry(self, what: str, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``call(*args, **kwargs)``, again and again while the broker or database is away."""
        while True:
            try:
                value = call(*args, **kwargs)
            except self._errors as error:
                now = time.monotonic()
                if self._down_since is None:
                    self._down_since = now
                    self.say(f"{what}: {error}; retrying until it answers")
                if now - self._down_since > self.outage:
                    raise TransientError(
                        f"{what}: still failing after {self.outage:.0f} s: {error}"
                    ) from None
                time.sleep(0.5)
                continue
            if self._down_since is not None:
                self.say(f"{what}: answering again")
                self._down_since = None
            return value

    def _event(self, type_: str, job: Job, payload: dict[str, Any]) -> None:
        body = {"kind": job.kind, "key": job.key, "attempt": job.attempts, **payload}
        self._retry(
            "state database", events.record, self.store.state, type_, f"job:{job.key}", body
        )

    # -- the run ------------------------------------------------------------------------

    def run(self, specs: Iterable[JobSpec]) -> list[Job]:
        """Submit ``specs`` and run them on the workers until every one has succeeded or
        failed; the jobs, in the order of ``specs``."""
        specs = list(specs)
        for spec in specs:
            if spec.kind not in self.kinds:
                raise ConfigError(
                    f"no job kind {spec.kind!r} on this control plane "
                    f"(have: {', '.join(sorted(self.kinds))})",
                    field="kind",
                )
        store = self.store
        db = "state database"
        self._retry(db, store.recover)
        keys = list(dict.fromkeys(self._retry(db, store.submit, spec).key for spec in specs))
        pending = {k for k, j in self._retry(db, store.jobs, keys).items() if not j.done}
        flights: dict[str, _Flight] = {}
        while pending:
            flying = {f.job.key for f in flights.values()}
            free = self.in_flight - len(flights)
            claimed = (
                self._retry(db, store.claim, free, self.owner, keys=pending - flying)
                if free > 0
                else []
            )
            for job in claimed:
                sent = self._send(job)
                if isinstance(sent, _Flight):
                    flights[sent.task_id] = sent
                elif sent is None or sent.done:
                    pending.discard(job.key)
            finished = self._poll(flights)
            pending -= finished
            if len(claimed) < free:
                # the rest waits for a backoff or runs under another control plane
                flying = {f.job.key for f in flights.values()}
                others = self._retry(db, store.jobs, pending - flying)
                pending -= {key for key, job in others.items() if job.done}
            if not finished and pending:
                time.sleep(self.poll)
        final = self._retry(db, store.jobs, keys)
        return [final[spec.key] for spec in specs]

    def _send(self, job: Job) -> _Flight | Job | None:
        """Prepare and send one attempt; when preparing failed, the job with that attempt
        recorded as failed."""
        from nanodistro.factory.remote.channel import payload_digest

        try:
            payload = self.kinds[job.kind].prepare(dict(job.inputs))
            digest = payload_digest(payload)
        except Exception as error:
            return self._fail(job, error)
        task_id = f"{job.key}-{job.attempts}"
        message = {"key": job.key, "kind": job.kind, "payload": payload, "attempt": job.attempts}
        self._retry(
            "broker",
            lambda: self.app.send_task(
                TASK_NAME,
                args=[message],
                task_id=task_id,
                queue=self.queue_for(job),
                retry=True,
                retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5},
            ),
        )
        return _Flight(job, task_id, payload=digest)

    def _metas(self, task_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The result store's record of each task (``status``, ``result``) in one round trip
        when the store is a key-value one (Redis)."""
        from celery.backends.base import KeyValueStoreBackend

        backend = self.app.backend
        if isinstance(backend, KeyValueStoreBackend):
            values = backend.mget([backend.get_key_for_task(t) for t in task_ids])
            return {
                t: _decoded(backend.decode_result, v)
                if v
                else {"status": "PENDING", "result": None}
                for t, v in zip(task_ids, values, strict=True)
            }
        return {t: _decoded(backend.get_task_meta, t) for t in task_ids}

    def _deliveries(self, task_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Each task's list of deliveries (``deliveries_key``), in the order the workers
        started them; empty when the result store keeps no lists (rpc://). Written by workers:
        anything that is not a JSON object is skipped."""
        client = getattr(self.app.backend, "client", None)
        if not task_ids or client is None or not hasattr(client, "lrange"):
            return {t: [] for t in task_ids}
        with client.pipeline() as pipe:
            for task_id in task_ids:
                pipe.lrange(deliveries_key(task_id), 0, MAX_DELIVERIES - 1)
            lists = pipe.execute()
        found: dict[str, list[dict[str, Any]]] = {}
        for task_id, items in zip(task_ids, lists, strict=True):
            records = []
            for item in items or []:
                try:
                    record = json.loads(item)
                except (TypeError, ValueError):
                    continue
                if isinstance(record, dict):
                    records.append(record)
            found[task_id] = records
        return found

    def _forget(self, task_id: str) -> None:
        backend = self.app.backend
        backend.forget(task_id)
        client = getattr(backend, "client", None)
        if client is not None and hasattr(client, "delete"):
            client.delete(deliveries_key(task_id))

    def _poll(self, flights: dict[str, _Flight]) -> set[str]:
        """Look at every task in flight once; the keys of the jobs that are done."""
        if not flights:
            return set()
        store = "broker (result store)"
        metas = self._retry(store, lambda: self._metas(list(flights)))
        # every delivery so far, for each task with a delivery not yet recorded or a result
        look = [
            task_id
            for task_id, meta in metas.items()
            if meta.get("status") in ("SUCCESS", "FAILURE", "REVOKED")
            or (
                meta.get("status") == STARTED
                and _delivery(meta.get("result")) not in flights[task_id].deliveries
            )
        ]
        listed = self._retry(store, lambda: self._deliveries(look)) if look else {}
        finished: set[str] = set()
        for task_id, meta in metas.items():
            flight = flights[task_id]
            status, value = meta.get("status"), meta.get("result")
            for record in listed.get(task_id, []):
                self._started(flight, record)
            if status == STARTED and isinstance(value, dict):
                self._started(flight, value)
            elif status == "SUCCESS":
                flights.pop(task_id)
                outcome = self._accept(flight, value)
                if outcome is None or outcome.done:
                    finished.add(flight.job.key)
                self._retry(store, lambda t=task_id: self._forget(t))
            elif status in ("FAILURE", "REVOKED"):
                # The task itself never fails (errors come back sealed): this is the worker
                # machinery (lost worker without redelivery, revoked): another attempt.
                flights.pop(task_id)
                outcome = self._fail(flight.job, TransientError(f"task {status}: {value}"))
                if outcome is None or outcome.done:
                    finished.add(flight.job.key)
        return finished

    def _started(self, flight: _Flight, meta: dict[str, Any]) -> None:
        delivery = _delivery(meta)
        if delivery is None or delivery in flight.deliveries:
            return
        flight.deliveries.append(delivery)
        self.say(f"{flight.job.kind} job {flight.job.id}: started on worker {delivery[0]}")
        self._event(
            events.JOB_ATTEMPT,
            flight.job,
            {
                "worker": delivery[0],
                "delivery": len(flight.deliveries),
                "redelivered": bool(meta.get("redelivered")) or len(flight.deliveries) > 1,
            },
        )

    def _ours(self, job: Job) -> bool:
        """Whether the job's row is still this attempt, running under this control plane."""
        row = self._retry("state database", lambda: self.store.get(job.key))
        return (
            row is not None
            and row.state == RUNNING
            and row.owner == job.owner
            and row.attempts == job.attempts
        )

    def _accept(self, flight: _Flight, value: Any) -> Job | None:
        from nanodistro.factory.remote import unseal
        from nanodistro.factory.remote.payload import clipped

        job = flight.job
        if not self._ours(job):
            self._event(events.JOB_RESULT_DROPPED, job,
                        {"reason": "the job is no longer this attempt's"})  # fmt: skip
            return None
        sealed = value.get("sealed") if isinstance(value, dict) else None
        try:
            worker, envelope = unseal(
                sealed or {}, job_key=job.key, token_for=self.token_for, attempt=job.attempts
            )
            if flight.payload is not None and envelope.get("payload") != flight.payload:
                raise TrustError(
                    "the output answers a payload this control plane did not send (a task "
                    "someone else queued); refused",
                    where=f"worker {worker}",
                )
        except NanodistroError as error:
            self._event(events.JOB_RESULT_DROPPED, job, {"reason": str(error)})
            # someone else's or a forged output: this attempt failed, another worker may do it
            return self._fail(job, TransientError(f"output refused: {error}"))
        if "error" in envelope:
            error_text = f"on worker {worker}: {clipped(envelope.get('error'))}"
            transient = bool(envelope.get("transient"))
            return self._record(lambda: self.store.fail(job, error_text, transient=transient), job)
        try:
            result = self.kinds[job.kind].accept(dict(job.inputs), envelope.get("output") or {},
                                                 worker)  # fmt: skip
            if not isinstance(result, Mapping):
                raise ConfigError(
                    f"the {job.kind} kind accepted with {type(result).__name__}, not a dict",
                    field="result",
                )
        except Exception as error:
            return self._fail(job, error)
        return self._record(lambda: self.store.succeed(job, result), job)

    def _fail(self, job: Job, error: BaseException) -> Job | None:
        """Record a failed attempt as LocalExecutor does: transient errors back to the queue
        (with backoff), the rest failed for good."""
        if isinstance(error, TRANSIENT_ERRORS):
            text, transient = str(error), True
        elif isinstance(error, NanodistroError):
            text, transient = str(error), False
        else:
            text, transient = f"unexpected failure (a bug; please report it): {error}", False
        return self._record(lambda: self.store.fail(job, text, transient=transient), job)

    def _record(self, call: Callable[[], Job], job: Job) -> Job | None:
        """An outcome written to the store; when a write that was retried across a database
        restart had landed already, the row as it is now."""
        try:
            return self._retry("state database", call)
        except StateError:
            return self._retry("state database", lambda: self.store.get(job.key))
