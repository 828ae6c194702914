"""Durable jobs: a kind plus JSON inputs, keyed by their digest, run at most once to success.

The model is engine-neutral (a later issue runs the same jobs on Celery): the store only knows
rows in the ``jobs`` table and their states ``queued -> running -> succeeded | failed``. Inputs
carry content digests (recipe sha256, package sha256s), so the same work submitted twice has the
same key and runs once. A transient failure (``FetchError``, ``TransientError``) goes back to the
queue with exponential backoff; anything else fails the job for good. A job left ``running`` by
a process that died (crash, ``kill -9``) is queued again by ``recover()``, which every executor
calls when it starts; handlers must therefore be idempotent (publish is: the same bytes under the
same name are a no-op).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from nanodistro.errors import ConfigError, FetchError, NanodistroError, StateError, TransientError
from nanodistro.factory.joblog import job_log, write
from nanodistro.factory.state.db import State
from nanodistro.factory.state.models import JobRow

__all__ = [
    "FAILED",
    "QUEUED",
    "RUNNING",
    "SUCCEEDED",
    "Handler",
    "Job",
    "JobSpec",
    "JobStore",
    "LocalExecutor",
    "canonical_json",
    "owner_alive",
    "process_owner",
]

QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
_IN_CHUNK = 5000
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (FetchError, TransientError)

Handler = Callable[[dict[str, Any]], dict[str, Any]]


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, no NaN: the same inputs always spell the same bytes."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"job inputs must be plain JSON: {error}", field="inputs") from None


@dataclass(frozen=True)
class JobSpec:
    kind: str
    inputs: dict[str, Any]
    max_attempts: int = 3

    @property
    def key(self) -> str:
        """sha256 hex of ``kind + "\\0" + canonical JSON(inputs)``."""
        return hashlib.sha256(f"{self.kind}\0{canonical_json(self.inputs)}".encode()).hexdigest()


@dataclass(frozen=True)
class Job:
    """A snapshot of one row of the ``jobs`` table (times are timezone-aware UTC)."""

    id: int
    kind: str
    key: str
    state: str
    attempts: int
    max_attempts: int
    not_before: datetime
    inputs: dict[str, Any]
    created_at: datetime
    result: dict[str, Any] | None = None
    error: str | None = None
    log_path: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    owner: str | None = None

    @property
    def done(self) -> bool:
        return self.state in (SUCCEEDED, FAILED)

    def to_json(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        for name, value in data.items():
            if isinstance(value, datetime):
                data[name] = value.isoformat().replace("+00:00", "Z")
        return data


def _job(row: JobRow) -> Job:
    return Job(
        id=row.id,
        kind=row.kind,
        key=row.key,
        state=row.state,
        attempts=row.attempts,
        max_attempts=row.max_attempts,
        not_before=row.not_before,
        inputs=dict(row.inputs),
        created_at=row.created_at,
        result=None if row.result is None else dict(row.result),
        error=row.error,
        log_path=row.log_path,
        started_at=row.started_at,
        finished_at=row.finished_at,
        owner=row.owner,
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22): with the
    pid it names one process, even after the pid is reused. None: no such (living) process."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return None
    # fields[0] is the state (field 3); a zombie has died, it only waits for its parent.
    return None if not fields or fields[0] in ("Z", "X") else fields[19]


def process_owner(pid: int | None = None) -> str:
    """``host:pid:start-ticks``, naming this process (or ``pid``) as a job's owner."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid) or '?'}"


def owner_alive(owner: str) -> bool | None:
    """Whether the process named by ``owner`` still runs; None when it is on another host (its
    liveness is that engine's business: it stays ``running`` here)."""
    parts = owner.rsplit(":", 2)
    if len(parts) != 3:
        return None  # not an owner this module wrote (another engine's): not ours to judge
    host, pid_text, ticks = parts
    if host != socket.gethostname():
        return None
    if not pid_text.isdigit():
        return False
    current = _start_ticks(int(pid_text))
    return current is not None and (ticks == "?" or current == ticks)


class JobStore:
    """The ``jobs`` table. ``backoff`` seconds before the first retry, doubling per attempt up to
    ``max_backoff``."""

    def __init__(
        self,
        state: State,
        *,
        backoff: float = 2.0,
        max_backoff: float = 300.0,
        log_dir: Path | None = None,
    ) -> None:
        self.state = state
        self.backoff = backoff
        self.max_backoff = max_backoff
        # where claimed jobs write their logs (factory/joblog.py): <log_dir>/<job id>.log
        self.log_dir = log_dir

    def get(self, key: str) -> Job | None:
        with self.state.session() as session:
            row = session.scalar(select(JobRow).where(JobRow.key == key))
            return None if row is None else _job(row)

    def jobs(self, keys: Iterable[str]) -> dict[str, Job]:
        """The known jobs among ``keys``, by key."""
        wanted = sorted(set(keys))
        found: dict[str, Job] = {}
        with self.state.session() as session:
            for i in range(0, len(wanted), _IN_CHUNK):
                chunk = wanted[i : i + _IN_CHUNK]
                for row in session.scalars(select(JobRow).where(JobRow.key.in_(chunk))):
                    found[row.key] = _job(row)
        return found

    def submit(self, spec: JobSpec, *, retry_failed: bool = False) -> Job:
        """The job for ``spec``: the existing one when its key is known (a failed job stays
        failed unless ``retry_failed``), else a new queued one."""
        if spec.max_attempts < 1:
            raise ConfigError("expected at least 1", field="max_attempts")
        key, now = spec.key, _now()
        try:
            with self.state.session() as session, session.begin():
                row = session.scalar(select(JobRow).where(JobRow.key == key).with_for_update())
                if row is None:
                    row = JobRow(
                        kind=spec.kind,
                        key=key,
                        state=QUEUED,
                        attempts=0,
                        max_attempts=spec.max_attempts,
                        not_before=now,
                        inputs=json.loads(canonical_json(spec.inputs)),
                        created_at=now,
                    )
                    session.add(row)
                elif retry_failed and row.state == FAILED:
                    row.state, row.attempts, row.not_before = QUEUED, 0, now
                    row.error = row.owner = row.finished_at = None
                session.flush()
                return _job(row)
        except IntegrityError:
            # Another process inserted the same key between our read and our insert.
            existing = self.get(key)
            if existing is None:
                raise
            return existing

    def claim(self, limit: int, owner: str, *, keys: Iterable[str] | None = None) -> list[Job]:
        """Up to ``limit`` due queued jobs (only among ``keys`` when given), oldest first, now
        ``running`` under ``owner`` with one more attempt counted."""
        if limit <= 0:
            return []
        now = _now()
        statement = (
            select(JobRow)
            .where(JobRow.state == QUEUED, JobRow.not_before <= now)
            .order_by(JobRow.id)
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite serializes writers anyway
        )
        chunks: list[list[str] | None] = [None]
        if keys is not None:
            wanted = sorted(keys)
            # bounded IN lists: SQLite and PostgreSQL cap the parameters of one statement
            chunks = [wanted[i : i + _IN_CHUNK] for i in range(0, len(wanted), _IN_CHUNK)]
        with self.state.session() as session, session.begin():
            rows: list[JobRow] = []
            for chunk in chunks:
                if len(rows) >= limit:
                    break
                bounded = statement.limit(limit - len(rows))
                if chunk is not None:
                    bounded = bounded.where(JobRow.key.in_(chunk))
                rows.extend(session.scalars(bounded))
            for row in rows:
                row.state, row.owner, row.started_at = RUNNING, owner, now
                row.attempts += 1
                if self.log_dir is not None:  # recorded before the job starts: followed live
                    row.log_path = str(self.log_dir / f"{row.id}.log")
            session.flush()
            return [_job(row) for row in rows]

    def _finish(self, job: Job, **values: Any) -> Job:
        # Fenced by owner and attempt: a worker that was presumed dead (and whose job was
        # recovered and claimed again) cannot overwrite the newer attempt's outcome.
        with self.state.session() as session, session.begin():
            changed = session.execute(
                update(JobRow)
                .where(
                    JobRow.id == job.id,
                    JobRow.state == RUNNING,
                    JobRow.owner == job.owner,
                    JobRow.attempts == job.attempts,
                )
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if changed.rowcount != 1:  # type: ignore[attr-defined]
                raise StateError(
                    f"job {job.kind} {job.key[:12]} attempt {job.attempts} is no longer running "
                    f"under {job.owner}; its outcome was not recorded",
                    where=self.state.url,
                )
            row = session.get_one(JobRow, job.id, populate_existing=True)
            return _job(row)

    def succeed(self, job: Job, result: Mapping[str, Any], *, log_path: str | None = None) -> Job:
        return self._finish(
            job,
            state=SUCCEEDED,
            result=json.loads(canonical_json(dict(result))),
            error=None,
            log_path=log_path if log_path is not None else job.log_path,
            finished_at=_now(),
        )

    def retry_delay(self, attempts: int) -> float:
        """Seconds to wait after failed attempt number ``attempts`` (1, 2, ...)."""
        return float(min(self.max_backoff, self.backoff * 2 ** max(attempts - 1, 0)))

    def fail(self, job: Job, error: str, transient: bool, *, log_path: str | None = None) -> Job:
        """Record a failed attempt: back to the queue after a backoff when ``transient`` and
        attempts remain, else ``failed`` for good."""
        now = _now()
        log_path = log_path if log_path is not None else job.log_path
        if transient and job.attempts < job.max_attempts:
            delay = timedelta(seconds=self.retry_delay(job.attempts))
            return self._finish(
                job,
                state=QUEUED,
                error=error,
                log_path=log_path,
                not_before=now + delay,
                owner=None,
            )
        return self._finish(job, state=FAILED, error=error, log_path=log_path, finished_at=now)

    def recover(self) -> list[Job]:
        """Jobs left ``running`` by a process on this host that no longer runs: queued again
        (or ``failed`` when that was their last attempt). Returns them as they are now."""
        now = _now()
        recovered: list[JobRow] = []
        with self.state.session() as session, session.begin():
            rows = session.scalars(
                select(JobRow).where(JobRow.state == RUNNING).with_for_update(skip_locked=True)
            )
            for row in rows:
                if row.owner is not None and owner_alive(row.owner) is not False:
                    continue
                note = f"interrupted: its process {row.owner} died during attempt {row.attempts}"
                if row.attempts >= row.max_attempts:
                    row.state, row.finished_at = FAILED, now
                    row.error = f"{note}, its last"
                else:
                    row.state, row.not_before, row.error, row.owner = QUEUED, now, note, None
                recovered.append(row)
            session.flush()
            return [_job(row) for row in recovered]


@dataclass
class _Running:
    futures: dict[Future[Job], Job] = field(default_factory=dict)

    def keys(self) -> set[str]:
        return {job.key for job in self.futures.values()}


class LocalExecutor:
    """Runs jobs on threads of this process, at most ``concurrency`` at a time."""

    def __init__(
        self,
        store: JobStore,
        handlers: Mapping[str, Handler],
        concurrency: int | None = None,
        *,
        poll: float = 0.05,
    ) -> None:
        self.store = store
        self.handlers = dict(handlers)
        self.concurrency = max(1, concurrency or os.cpu_count() or 1)
        self.poll = poll
        self.owner = process_owner()

    def run(self, specs: Iterable[JobSpec]) -> list[Job]:
        """Submit ``specs`` and run them until every one has succeeded or failed; the jobs, in
        the order of ``specs``. Jobs another live process is running are waited for."""
        specs = list(specs)
        for spec in specs:
            if spec.kind not in self.handlers:
                raise ConfigError(
                    f"no handler for job kind {spec.kind!r} (have: {', '.join(sorted(self.handlers))})",
                    field="kind",
                )
        self.store.recover()
        keys = list(dict.fromkeys(self.store.submit(spec).key for spec in specs))
        pending = {key for key, job in self.store.jobs(keys).items() if not job.done}
        running = _Running()
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="nanodistro-job") as pool:
            while pending:
                free = self.concurrency - len(running.futures)
                claimed = self.store.claim(free, self.owner, keys=pending - running.keys())
                for job in claimed:
                    running.futures[pool.submit(self._execute, job)] = job
                timeout: float | None = None  # all slots busy: only a finished job matters
                if len(claimed) < free:
                    # What is left cannot start now: queued for later (backoff), or running in
                    # another process. Only those rows are read, so a long queue costs nothing
                    # per finished job.
                    others = self.store.jobs(pending - running.keys())
                    pending -= {key for key, job in others.items() if job.done}
                    timeout = self._sleep(others.values())
                if running.futures:
                    finished, _ = wait(running.futures, timeout, FIRST_COMPLETED)
                    for future in finished:
                        running.futures.pop(future)
                        outcome = future.result()  # raises only for an error of the store
                        if outcome.done:
                            pending.discard(outcome.key)
                elif pending:
                    time.sleep(timeout or self.poll)
        final = self.store.jobs(keys)
        return [final[spec.key] for spec in specs]

    def _sleep(self, waiting: Iterable[Job]) -> float:
        """Until the next queued job is due (backoff), at most a second, at least ``poll``."""
        queued = [job.not_before for job in waiting if job.state == QUEUED]
        if not queued:
            return self.poll
        due = (min(queued) - _now()).total_seconds()
        return min(1.0, max(self.poll, due))

    def _execute(self, job: Job) -> Job:
        with job_log(Path(job.log_path) if job.log_path else None):
            write(f"{job.kind} job {job.id}, attempt {job.attempts}/{job.max_attempts}")
            outcome = self._outcome(job)
            write(f"{outcome.state}" + (f": {outcome.error}" if outcome.error else ""))
            return outcome

    def _outcome(self, job: Job) -> Job:
        handler = self.handlers[job.kind]
        try:
            result = handler(dict(job.inputs))
            if not isinstance(result, Mapping):
                raise ConfigError(
                    f"the {job.kind} handler returned {type(result).__name__}, not a dict",
                    field="result",
                )
            canonical_json(dict(result))
        except TRANSIENT_ERRORS as error:
            return self.store.fail(job, str(error), transient=True)
        except NanodistroError as error:
            return self.store.fail(job, str(error), transient=False)
        except Exception as error:  # a bug in one handler fails its job, not the whole run
            return self.store.fail(
                job, f"unexpected failure (a bug; please report it): {error}", transient=False
            )
        return self.store.succeed(job, result)
