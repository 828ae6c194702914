"""Runs: what the console, the API and webhooks ask of the factory, and the thread doing it.

A run is a row (``runs`` table): queued -> running -> succeeded | failed. ``RunStore`` queues
and claims them (a claim is one conditional UPDATE, so two serving processes on one database
never take the same run); ``FactoryRunner`` is the serving process's single worker thread: it
takes queued runs oldest first, and when none is waiting and ``interval`` has passed since the
last scheduled cycle, it queues one itself. Runs go one at a time, like ``factory run`` cycles:
each is a whole cycle (or a promotion, rollback...) over the same workspace.

Each run's progress lines go to ``.nanodistro/runs/<id>.log`` as they happen; the console
follows that file (server-sent events), so a page opened mid-run sees all of it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from nanodistro.errors import ConfigError, NanodistroError
from nanodistro.factory.joblog import stamped
from nanodistro.factory.state.db import State
from nanodistro.factory.state.models import RunRow
from nanodistro.factory.state.types import utcnow
from nanodistro.factory.workspace import Workspace

__all__ = [
    "FAILED",
    "QUEUED",
    "RUNNING",
    "RUN_KINDS",
    "SUCCEEDED",
    "FactoryRunner",
    "Run",
    "RunStore",
]

log = logging.getLogger(__name__)

QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
RUN_KINDS = ("cycle", "rebuild", "promote", "rollback", "check")


@dataclass(frozen=True)
class Run:
    id: int
    kind: str
    state: str
    params: dict[str, Any]
    requested_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    result: dict[str, Any] | None
    error: str | None
    log_path: str | None

    @property
    def done(self) -> bool:
        return self.state in (SUCCEEDED, FAILED)

    def to_json(self) -> dict[str, Any]:
        def when(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "id": self.id,
            "kind": self.kind,
            "state": self.state,
            "params": self.params,
            "requested_by": self.requested_by,
            "created_at": when(self.created_at),
            "started_at": when(self.started_at),
            "finished_at": when(self.finished_at),
            "result": self.result,
            "error": self.error,
        }


def _run(row: RunRow) -> Run:
    return Run(
        row.id,
        row.kind,
        row.state,
        dict(row.params or {}),
        row.requested_by,
        row.created_at,
        row.started_at,
        row.finished_at,
        row.result,
        row.error,
        row.log_path,
    )


class RunStore:
    """The ``runs`` table; logs under ``log_dir``. ``reads``: a read-only state the queries
    (get, list, counts) use, so they never wait for a writer."""

    def __init__(self, state: State, log_dir: Path, reads: State | None = None) -> None:
        self.state = state
        self.log_dir = log_dir
        self.reads = reads or state

    def submit(
        self,
        kind: str,
        params: Mapping[str, Any],
        requested_by: str,
        *,
        dedup_key: str | None = None,
    ) -> tuple[Run, bool]:
        """Queue a run; (the run, True) — or, when ``dedup_key`` was seen, (that run, False)."""
        if kind not in RUN_KINDS:
            raise ConfigError(f"unknown run kind {kind!r} (one of: {', '.join(RUN_KINDS)})")
        with self.state.session() as session:
            if dedup_key is not None:
                seen = session.scalar(select(RunRow).where(RunRow.dedup_key == dedup_key))
                if seen is not None:
                    return _run(seen), False
            row = RunRow(
                kind=kind,
                state=QUEUED,
                params=dict(params),
                requested_by=requested_by,
                dedup_key=dedup_key,
                created_at=utcnow(),
            )
            session.add(row)
            try:
                session.flush()
            except IntegrityError:  # the same delivery at the same moment from another process
                session.rollback()
                seen = session.scalar(select(RunRow).where(RunRow.dedup_key == dedup_key))
                assert seen is not None
                return _run(seen), False
            row.log_path = str(self.log_dir / f"{row.id}.log")
            session.commit()
            return _run(row), True

    def get(self, run_id: int) -> Run | None:
        with self.reads.session() as session:
            row = session.get(RunRow, run_id)
            return _run(row) if row is not None else None

    def list(
        self, *, limit: int = 50, kind: str | None = None, state: str | None = None
    ) -> list[Run]:
        """Newest first."""
        query = select(RunRow).order_by(RunRow.id.desc()).limit(limit)
        if kind:
            query = query.where(RunRow.kind == kind)
        if state:
            query = query.where(RunRow.state == state)
        with self.reads.session() as session:
            return [_run(r) for r in session.scalars(query)]

    def counts(self) -> dict[tuple[str, str], int]:
        """(kind, state) -> number of runs."""
        query = select(RunRow.kind, RunRow.state, func.count()).group_by(RunRow.kind, RunRow.state)
        with self.reads.session() as session:
            return {(k, s): n for k, s, n in session.execute(query)}

    def claim_next(self) -> Run | None:
        """The oldest queued run, now running; None when nothing waits."""
        with self.state.session() as session:
            ids = session.scalars(
                select(RunRow.id).where(RunRow.state == QUEUED).order_by(RunRow.id).limit(5)
            ).all()
            for run_id in ids:
                claimed = session.execute(
                    update(RunRow)
                    .where(RunRow.id == run_id, RunRow.state == QUEUED)
                    .values(state=RUNNING, started_at=utcnow())
                )
                session.commit()
                if claimed.rowcount == 1:  # type: ignore[attr-defined]
                    row = session.get(RunRow, run_id)
                    assert row is not None
                    session.refresh(row)
                    return _run(row)
        return None

    def finish(
        self, run_id: int, *, result: dict[str, Any] | None = None, error: str | None = None
    ) -> None:
        with self.state.session() as session:
            row = session.get(RunRow, run_id)
            assert row is not None
            row.state = FAILED if error is not None else SUCCEEDED
            row.result, row.error, row.finished_at = result, error, utcnow()
            session.commit()

    def interrupt_running(self) -> int:
        """Runs a dead serving process left ``running`` are failed (a cycle is not resumed
        half-way by this runner: the next cycle finishes what it left, as after a crash)."""
        with self.state.session() as session:
            done = session.execute(
                update(RunRow)
                .where(RunRow.state == RUNNING)
                .values(
                    state=FAILED,
                    error="interrupted: the serving process stopped during the run",
                    finished_at=utcnow(),
                )
            )
            session.commit()
            return int(done.rowcount)  # type: ignore[attr-defined]


# ------------------------------------------------------------------------- executing runs

Say = Callable[[str], None]


def _cycle_summary(report: Any) -> dict[str, Any]:
    data = report.to_json()
    gate = data.get("gate") or {}
    return {
        "cycle": data["cycle"],
        "status": data["status"],
        "ok": data["ok"],
        "seconds": round(float(data.get("seconds") or 0.0), 1),
        "repo_version": data.get("repo_version"),
        "channels": data.get("channels"),
        "promoted": data.get("promoted"),
        "bumps": [
            {k: b.get(k) for k in ("recipe", "old", "new", "status")} for b in data.get("bumps", [])
        ],
        "builds": {b["recipe"]: b["status"] for b in data.get("builds", [])},
        "changed_images": data.get("changed_images"),
        "gate_reasons": list(gate.get("reasons") or []),
        "notes": list(data.get("notes") or []) + list(data.get("monitor_errors") or []),
    }


class FactoryRunner:
    """The serving process's worker: one thread running queued runs, and the scheduled cycles
    every ``interval`` (None: only what is asked for)."""

    def __init__(
        self,
        workspace: Workspace,
        state: State,
        store: RunStore,
        *,
        interval: timedelta | None,
        monitor_upstreams: bool = True,
        concurrency: int | None = None,
        on_finish: Callable[[Run], None] | None = None,
    ) -> None:
        self.workspace = workspace
        self.state = state
        self.store = store
        self.interval = interval
        self.monitor_upstreams = monitor_upstreams
        self.concurrency = concurrency
        self.on_finish = on_finish
        self.current: Run | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # control
    def start(self) -> None:
        self.store.log_dir.mkdir(parents=True, exist_ok=True)
        self.store.interrupt_running()
        self._thread = threading.Thread(target=self._loop, name="factory-runner", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float | None = None) -> None:
        """Stop taking runs; waits up to ``timeout`` for the current one."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        next_cycle = time.monotonic() if self.interval is not None else None
        while not self._stop.is_set():
            run: Run | None = None
            try:
                run = self.store.claim_next()
                if run is not None:
                    self.execute(run)
                    continue
                if next_cycle is not None and time.monotonic() >= next_cycle:
                    assert self.interval is not None
                    next_cycle = time.monotonic() + self.interval.total_seconds()
                    self.store.submit("cycle", {"monitor": self.monitor_upstreams}, "schedule")
                    continue
            except Exception as failure:
                # This thread is the process's only worker: a database locked too long or a log
                # that cannot be written fails that run (its log stream then ends), never the
                # thread, which would leave every later run queued for good.
                log.exception("factory runner: %s", failure)
                if run is not None:
                    self._fail(run, failure)
                self._stop.wait(2.0)
                continue
            wait = 2.0 if next_cycle is None else min(2.0, max(0.0, next_cycle - time.monotonic()))
            self._wake.wait(wait)
            self._wake.clear()

    def _fail(self, run: Run, failure: Exception) -> None:
        """Mark ``run`` failed after ``execute`` itself broke (best effort: the database may
        be what broke)."""
        self.current = None
        with contextlib.suppress(Exception):
            now = self.store.get(run.id)
            if now is not None and not now.done:
                self.store.finish(run.id, error=f"internal error: {failure!r}")

    # one run
    def execute(self, run: Run) -> None:
        assert run.log_path is not None
        log = Path(run.log_path)
        log.parent.mkdir(parents=True, exist_ok=True)
        self.current = run
        started = time.monotonic()
        with log.open("a", encoding="utf-8", buffering=1) as out:

            def say(message: str) -> None:
                out.write(stamped(str(message)))

            say(f"run {run.id}: {run.kind} {run.params} (asked by {run.requested_by})")
            result: dict[str, Any] | None = None
            error: str | None = None
            try:
                result = self._dispatch(run, say)
            except NanodistroError as failure:
                error = str(failure)
            except Exception as failure:  # a bug must not kill the runner thread
                error = f"internal error: {failure!r}"
                out.write(traceback.format_exc())
            took = time.monotonic() - started
            if error is None:
                say(f"run {run.id} succeeded in {took:.1f}s")
            else:
                say(f"run {run.id} failed in {took:.1f}s: {error}")
        self.store.finish(run.id, result=result, error=error)
        self.current = None
        finished = self.store.get(run.id)
        if self.on_finish is not None and finished is not None:
            self.on_finish(finished)

    def _dispatch(self, run: Run, say: Say) -> dict[str, Any]:
        from nanodistro.factory.cycle import run_cycle

        params = run.params
        if run.kind == "cycle":
            report = run_cycle(
                self.workspace,
                self.state,
                progress=say,
                monitor_upstreams=bool(params.get("monitor", True)),
                concurrency=self.concurrency,
            )
            return _cycle_summary(report)
        if run.kind == "check":
            recipes = [str(r) for r in params.get("recipes", [])]
            report = run_cycle(
                self.workspace,
                self.state,
                progress=say,
                monitor_upstreams=True,
                concurrency=self.concurrency,
                monitor_recipes=recipes,
            )
            return _cycle_summary(report)
        if run.kind == "rebuild":
            return self._rebuild(str(params["recipe"]), run.requested_by, say)
        if run.kind == "promote":
            from nanodistro.factory.promote import promote_staging

            return promote_staging(self.workspace, self.state, by=run.requested_by, say=say)
        if run.kind == "rollback":
            from nanodistro.factory.rollback import rollback

            to = params.get("to")
            result = rollback(
                self.workspace,
                self.state,
                channel="stable",
                to=int(to) if to is not None else None,
                progress=say,
            )
            return result.to_json()
        raise ConfigError(f"unknown run kind {run.kind!r}")

    def _rebuild(self, recipe: str, by: str, say: Say) -> dict[str, Any]:
        """An epoch bump of ``recipe`` (the same sources, a new package), then a cycle without
        monitoring that builds it, re-tests its dependents and promotes through the gates."""
        from nanodistro.factory.building import epoch_bump
        from nanodistro.factory.cycle import run_cycle
        from nanodistro.factory.gitcommit import is_git_worktree

        path = recipe_path(self.workspace, recipe)
        new = epoch_bump(
            self.workspace,
            self.state,
            path,
            recipe,
            f"rebuild requested by {by}",
            git=is_git_worktree(self.workspace.root),
            say=say,
        )
        report = run_cycle(
            self.workspace,
            self.state,
            progress=say,
            monitor_upstreams=False,
            concurrency=self.concurrency,
        )
        return {"recipe": recipe, "version": new, **_cycle_summary(report)}


def recipe_path(workspace: Workspace, recipe: str) -> Path:
    """The recipe file named ``recipe`` in the workspace, or a ConfigError naming the choices."""
    for path in workspace.recipe_files():
        if path.stem == recipe:
            return path
    raise ConfigError(
        f"no recipe {recipe!r} in {workspace.recipes_dir}",
        field="recipe",
        where=str(workspace.root),
    )
