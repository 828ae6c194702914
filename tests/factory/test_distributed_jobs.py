"""The Celery executor with real services: redis-server, PostgreSQL and two ``nanodistro
worker`` processes (one set per module), running the trivial ``noop`` kind.

Checked: jobs spread over both workers, each accepted once; a worker SIGKILLed mid-job has its
job redelivered to the other worker, the event log shows both deliveries and the job is
published once; the broker and the state database each restarted mid-run and the run
completes; ``factory status`` shows queues, workers and jobs; a forged output is refused.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cli_runner import run_cli
from postgres_server import postgres
from redis_server import RedisServer, require_redis

pytestmark = pytest.mark.slow  # real services and worker processes: ~1 min for the module

# a worker gives a job back to the queue this long after it vanished (short for the tests)
VISIBILITY = 4


@dataclass
class Cluster:
    root: Path
    redis: RedisServer
    state_url: str
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def control(self) -> Path:
        return self.root / "control"

    def start_worker(self, name: str, *, test_kinds: bool = True, queue: str = "") -> None:
        from nanodistro.factory.distributed.noop import TEST_KINDS_ENV
        from nanodistro.factory.remote import WorkerRegistry

        registry = WorkerRegistry(self.control)
        token = self.root / f"{name}.token"
        if not token.exists():
            token.write_text(registry.create(name))
            token.chmod(0o600)
        environ = {k: v for k, v in os.environ.items() if k != TEST_KINDS_ENV}
        log = (self.root / f"{name}.log").open("ab")
        self.workers[name] = subprocess.Popen(
            [sys.executable, "-m", "nanodistro", "worker", "--name", name,
             "--token-file", str(token), "--broker", self.redis.url(),
             "--cache", str(self.root / f"{name}-cache"),
             "--visibility-timeout", str(VISIBILITY), "--loglevel", "WARNING",
             *(["--queue", queue] if queue else [])],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**environ, TEST_KINDS_ENV: "1"} if test_kinds else environ,
        )  # fmt: skip
        log.close()

    def kill_worker(self, name: str) -> None:
        """SIGKILL the worker and its pool processes (a machine that died)."""
        process = self.workers.pop(name)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)

    def wait_ready(self, names: set[str], timeout: float = 60) -> None:
        from nanodistro.factory.distributed.app import make_app

        app = make_app(self.redis.url())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            replies = app.control.inspect(timeout=0.5).ping() or {}
            if names <= {worker.partition("@")[0] for worker in replies}:
                return
        logs = {n: (self.root / f"{n}.log").read_text(errors="replace")[-1500:] for n in names}
        raise AssertionError(f"workers {sorted(names)} did not answer: {logs}")

    def executor(self, say: Callable[[str], None] | None = None) -> Any:
        from nanodistro.factory.distributed import noop
        from nanodistro.factory.distributed.app import make_app
        from nanodistro.factory.distributed.executor import CeleryExecutor
        from nanodistro.factory.jobs import JobStore
        from nanodistro.factory.remote import WorkerRegistry
        from nanodistro.factory.state import open_state

        store = JobStore(open_state(self.state_url), backoff=0.1)
        return CeleryExecutor(
            store,
            {"noop": noop.control_kind()},
            make_app(self.redis.url()),
            token_for=WorkerRegistry(self.control).token_for,
            say=say,
        )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require_redis()
    from nanodistro.factory.distributed import noop

    noop.register()  # some tests stand in for a worker (execute) in this process
    redis = RedisServer()
    redis.start()
    found = Cluster(tmp_path_factory.mktemp("cluster"), redis, postgres().new_database())
    try:
        for name in ("w1", "w2"):
            found.start_worker(name)
        found.wait_ready({"w1", "w2"})
        yield found
    finally:
        for name in list(found.workers):
            found.kill_worker(name)
        redis.stop()


def attempts(cluster: Cluster, key: str) -> list[dict[str, Any]]:
    from nanodistro.factory import events
    from nanodistro.factory.state import open_state

    with open_state(cluster.state_url) as state:
        return [e.payload for e in events.query(state, subject=f"job:{key}", types=["job-attempt"])]


def spec(value: Any, **inputs: Any) -> Any:
    from nanodistro.factory.jobs import JobSpec

    return JobSpec("noop", {"value": value, **inputs})


def test_jobs_spread_over_both_workers_and_are_accepted_once(
    cluster: Cluster, tmp_path: Path
) -> None:
    published = tmp_path / "published"
    specs = [spec(f"spread-{i}", sleep=0.2, publish_to=str(published)) for i in range(12)]
    jobs = cluster.executor().run(specs)
    assert [job.state for job in jobs] == ["succeeded"] * 12
    assert [job.result["echo"] for job in jobs if job.result] == [f"spread-{i}" for i in range(12)]
    assert {job.result["worker"] for job in jobs if job.result} == {"w1", "w2"}
    lines = published.read_text().splitlines()
    assert sorted(line.split()[0] for line in lines) == sorted(f"spread-{i}" for i in range(12))
    # one delivery per job, each recorded with its worker
    for job in jobs:
        assert [(a["worker"], a["delivery"]) for a in attempts(cluster, job.key)] == [
            (job.result["worker"] if job.result else "", 1)
        ]
    # the same specs again: known keys, nothing sent, nothing published twice
    again = cluster.executor().run(specs)
    assert [job.id for job in again] == [job.id for job in jobs]
    assert len(published.read_text().splitlines()) == 12


def _run_in_thread(executor: Any, specs: list[Any]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []

    def target() -> None:
        try:
            out.extend(executor.run(specs))
        except BaseException as error:  # handed to the test thread
            out.append(error)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, out


def _wait_for(
    what: str, check: Callable[[], Any], timeout: float = 120, logs: Path | None = None
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    tails = {p.name: p.read_text(errors="replace")[-2000:] for p in (logs or Path()).glob("*.log")}
    raise AssertionError(f"timed out waiting for {what}; worker logs: {tails if logs else '-'}")


def test_worker_killed_mid_job_redelivered_to_the_other_and_published_once(
    cluster: Cluster, tmp_path: Path
) -> None:
    published = tmp_path / "published"
    job = spec("killed-mid-job", sleep=2, publish_to=str(published))
    thread, out = _run_in_thread(cluster.executor(), [job])
    first = _wait_for("the job to start", lambda: attempts(cluster, job.key))[0]["worker"]
    time.sleep(0.3)
    cluster.kill_worker(first)  # the worker and its pool process, mid-job
    try:
        thread.join(120)
        assert not thread.is_alive()
        (done,) = out
        other = ({"w1", "w2"} - {first}).pop()
        assert done.state == "succeeded", done.error
        assert done.attempts == 1  # one attempt of the job, delivered twice
        assert done.result["worker"] == other
        seen = attempts(cluster, job.key)
        assert [(a["worker"], a["delivery"], a["redelivered"]) for a in seen] == [
            (first, 1, False),
            (other, 2, True),
        ]
        assert published.read_text().splitlines() == [f"killed-mid-job {other}"]
    finally:
        cluster.start_worker(first)
        cluster.wait_ready({"w1", "w2"})


def test_a_production_worker_refuses_the_noop_kind(cluster: Cluster, tmp_path: Path) -> None:
    """A worker started without NANODISTRO_WORKER_TEST_KINDS=1 (production) has no ``noop``
    kind: anyone on the broker could otherwise queue sleeps to hold it. The noop job sent to
    it fails with the worker's sealed refusal and nothing is published."""
    from nanodistro.factory.jobs import JobSpec

    cluster.start_worker("prod", test_kinds=False, queue="prod-only")
    try:
        cluster.wait_ready({"prod"})
        published = tmp_path / "published"
        job = JobSpec("noop", {"value": "prod", "publish_to": str(published)}, max_attempts=1)
        executor = cluster.executor()
        executor.queue_for = lambda _job: "prod-only"
        (done,) = executor.run([job])
        assert done.state == "failed"
        assert "on worker prod: this worker runs no 'noop' jobs" in (done.error or "")
        assert not published.exists()
    finally:
        cluster.kill_worker("prod")


def _stop_postgres() -> None:
    """Stop the test PostgreSQL (fast: connections are cut), keeping its data."""
    server = postgres()
    server._run(str(server.binaries / "pg_ctl"), "-D", str(server.data), "-m", "fast", "-w", "stop")


def _start_postgres() -> None:
    server = postgres()
    options = f"-h 127.0.0.1 -p {server.port} -k {server.root} -F -c max_connections=200"
    server._run(str(server.binaries / "pg_ctl"), "-D", str(server.data), "-l",
                str(server.root / "server.log"), "-o", options, "-w", "-t", "60", "start")  # fmt: skip


def test_broker_and_database_restarted_mid_run(cluster: Cluster, tmp_path: Path) -> None:
    """redis-server, then PostgreSQL, restarted while jobs run: the run waits them out and
    completes, each job published once. The jobs are held (noop ``hold``) across the broker's
    restart and let go only once the database is down, which stays down until the control
    plane has met it: timing guards failed under load (the run finished before an outage was
    injected, or never touched the database while it was away)."""
    published = tmp_path / "published"
    gate = tmp_path / "go"
    specs = [
        spec(f"outage-{i}", sleep=0.2, hold=str(gate), publish_to=str(published)) for i in range(12)
    ]
    said: list[str] = []
    thread, out = _run_in_thread(cluster.executor(say=said.append), specs)
    _wait_for("a job to start", lambda: attempts(cluster, specs[0].key), logs=cluster.root)
    cluster.redis.restart(down=1.5)  # the broker goes away mid-job
    assert thread.is_alive() and not out  # nothing could finish: every job is held
    # and so does the database: while every job is held the control plane has nothing to write,
    # so the jobs are let go with the database away (their results must be recorded there),
    # and it comes back once the control plane has met its absence
    _stop_postgres()
    try:
        gate.touch()
        _wait_for(
            "the control plane to meet the database outage",
            lambda: any(line.startswith("state database") and "retrying" in line for line in said),
            logs=cluster.root,
        )
    finally:
        _start_postgres()
    thread.join(180)
    logs = [p.read_text(errors="replace")[-2000:] for p in cluster.root.glob("*.log")]
    assert not thread.is_alive(), (said, logs)
    assert all(not isinstance(job, BaseException) for job in out), (out, said)
    assert [job.state for job in out] == ["succeeded"] * 12, [job.error for job in out]
    lines = published.read_text().splitlines()
    assert sorted(line.split()[0] for line in lines) == sorted(f"outage-{i}" for i in range(12))
    # the database outage was waited out (the broker's, by the Redis client's and Celery's own
    # retries too: the jobs after the first two came from the restarted broker)
    assert any(line.startswith("state database") and "answering again" in line for line in said)


def test_forged_output_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    """A result sealed with a token the control plane did not issue is dropped (an event) and
    the attempt fails; with one attempt the job fails and nothing is published."""
    from nanodistro.factory.distributed.task import WorkerIdentity, execute
    from nanodistro.factory.jobs import JobSpec, process_owner

    executor = cluster.executor()
    published = tmp_path / "published"
    job = JobSpec("noop", {"value": "forged", "publish_to": str(published)}, max_attempts=1)
    claimed = executor.store.submit(job)
    (claimed,) = executor.store.claim(1, executor.owner, keys=[claimed.key])
    forged = execute(
        {"key": job.key, "kind": "noop", "payload": {"value": "forged"}, "attempt": 1},
        WorkerIdentity("w1", "0" * 64, tmp_path / "work", tmp_path / "cache"),
    )
    from nanodistro.factory.distributed.executor import _Flight

    outcome = executor._accept(_Flight(claimed, "forged-1"), forged)
    assert outcome.state == "failed"
    assert "MAC does not verify" in (outcome.error or "")
    assert not published.exists()
    assert process_owner() == executor.owner


def test_factory_status_shows_queues_workers_and_jobs(cluster: Cluster, tmp_path: Path) -> None:
    from nanodistro.util.host import host_arch

    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "nanodistro.toml").write_text(
        f'[executor]\nkind = "celery"\nbroker = "{cluster.redis.url()}"\n'
        f'[state]\nurl = "{cluster.state_url}"\n'
    )
    cluster.executor().run([spec("status-done")])
    from nanodistro.factory.jobs import JobStore
    from nanodistro.factory.state import open_state

    with open_state(cluster.state_url) as state:
        JobStore(state).submit(spec("status-waiting"))  # submitted, never run: waiting
    result = run_cli(workspace, "factory", "status", str(workspace), "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["executor"] == "celery"
    assert status["broker_error"] is None
    assert {w.partition("@")[0] for w in status["workers"]} == {"w1", "w2"}
    assert all(queues == [host_arch()] for queues in status["workers"].values())
    assert status["queues"] == {host_arch(): 0}
    assert status["jobs"]["queued"] == 1 and status["jobs"]["succeeded"] >= 1
    assert status["oldest_waiting"]["kind"] == "noop"
    text = run_cli(workspace, "factory", "status", str(workspace))
    assert text.returncode == 0 and "workers   " in text.stdout and "oldest    noop" in text.stdout

    # the broker away: said on one line, exit status 1, the jobs still shown
    (workspace / "nanodistro.toml").write_text(
        '[executor]\nkind = "celery"\nbroker = "redis://127.0.0.1:1/0"\n'
        f'[state]\nurl = "{cluster.state_url}"\n'
    )
    down = run_cli(workspace, "factory", "status", str(workspace), "--json", "--timeout", "0.5")
    assert down.returncode == 1
    assert json.loads(down.stdout)["broker_error"]
    assert json.loads(down.stdout)["jobs"]["queued"] == 1


def test_late_duplicate_result_is_dropped_with_an_event(cluster: Cluster, tmp_path: Path) -> None:
    """A second, valid result for a job already accepted (a redelivered copy finishing late)
    is not accepted again: nothing is published twice, the drop is in the event log."""
    from nanodistro.factory.distributed.executor import _Flight
    from nanodistro.factory.distributed.task import WorkerIdentity, execute
    from nanodistro.factory.remote import WorkerRegistry

    published = tmp_path / "published"
    job = spec("late-duplicate", publish_to=str(published))
    executor = cluster.executor()
    claimed = executor.store.submit(job)
    (claimed,) = executor.store.claim(1, executor.owner, keys=[claimed.key])
    token = WorkerRegistry(cluster.control).token_for("w2")
    identity = WorkerIdentity("w2", token, tmp_path / "work", tmp_path / "cache")
    message = {"key": job.key, "kind": "noop", "payload": {"value": "late-duplicate"},
               "attempt": claimed.attempts}  # fmt: skip
    first = executor._accept(_Flight(claimed, "t-1"), execute(message, identity))
    assert first is not None and first.state == "succeeded"
    late = executor._accept(_Flight(claimed, "t-1"), execute(message, identity))
    assert late is None
    assert published.read_text().splitlines() == ["late-duplicate w2"]
    from nanodistro.factory import events
    from nanodistro.factory.state import open_state

    with open_state(cluster.state_url) as state:
        dropped = events.query(state, subject=f"job:{job.key}", types=["job-result-dropped"])
    assert [e.payload["reason"] for e in dropped] == ["the job is no longer this attempt's"]


def test_deliveries_no_poll_saw_started_are_in_the_event_log(
    cluster: Cluster, tmp_path: Path
) -> None:
    """A task's STARTED state keeps only the latest delivery and lasts only until its result:
    a delivery overwritten by the next one's STARTED, or one that started and finished between
    two looks of the control plane, was missing from the event log. The workers' list of
    deliveries gives each its job-attempt event, in order, when the result arrives."""
    from nanodistro.factory.distributed.app import deliveries_key
    from nanodistro.factory.distributed.executor import _Flight
    from nanodistro.factory.distributed.task import WorkerIdentity, execute, record_delivery
    from nanodistro.factory.remote import WorkerRegistry
    from nanodistro.factory.remote.channel import payload_digest

    published = tmp_path / "published"
    job = spec("unseen-deliveries", publish_to=str(published))
    executor = cluster.executor()
    claimed = executor.store.submit(job)
    (claimed,) = executor.store.claim(1, executor.owner, keys=[claimed.key])
    payload = executor.kinds["noop"].prepare(dict(claimed.inputs))
    task_id = f"{job.key}-{claimed.attempts}"
    backend = executor.app.backend
    # w1 started it and died; w2 got it again and finished it; no poll in between
    record_delivery(backend, task_id, {"worker": "w1", "pid": 11, "redelivered": False})
    record_delivery(backend, task_id, {"worker": "w2", "pid": 22, "redelivered": True})
    identity = WorkerIdentity(
        "w2", WorkerRegistry(cluster.control).token_for("w2"), tmp_path / "w", tmp_path / "c"
    )
    message = {"key": job.key, "kind": "noop", "payload": payload, "attempt": claimed.attempts}
    backend.store_result(task_id, execute(message, identity), "SUCCESS")
    flights = {task_id: _Flight(claimed, task_id, payload=payload_digest(payload))}
    assert executor._poll(flights) == {job.key} and not flights
    seen = attempts(cluster, job.key)
    assert [(a["worker"], a["delivery"], a["redelivered"]) for a in seen] == [
        ("w1", 1, False),
        ("w2", 2, True),
    ]
    assert published.read_text().splitlines() == ["unseen-deliveries w2"]
    assert not backend.client.exists(deliveries_key(task_id))  # forgotten with the result


def test_jobs_left_running_by_a_dead_control_plane_run_again(cluster: Cluster) -> None:
    import socket

    executor = cluster.executor()
    job = spec("orphaned")
    submitted = executor.store.submit(job)
    dead = f"{socket.gethostname()}:999999999:1"  # no such process
    executor.store.claim(1, dead, keys=[submitted.key])
    (done,) = executor.run([job])
    assert done.state == "succeeded" and done.attempts == 2
    assert done.result == {"echo": "orphaned", "worker": done.result["worker"]}


def test_pool_process_killed_mid_job_is_delivered_again(cluster: Cluster, tmp_path: Path) -> None:
    """Only the process running the job dies (the OOM killer's way): the worker rejects the
    message back to the queue at once, a worker runs it again, it is published once."""
    from nanodistro.factory.distributed.app import make_app

    published = tmp_path / "published"
    job = spec("pool-process-killed", sleep=2, publish_to=str(published))
    thread, out = _run_in_thread(cluster.executor(), [job])
    _wait_for("the job to start", lambda: attempts(cluster, job.key))
    meta = make_app(cluster.redis.url()).AsyncResult(f"{job.key}-1").info
    os.kill(meta["pid"], signal.SIGKILL)
    thread.join(120)
    (done,) = out
    assert done.state == "succeeded", done.error
    seen = attempts(cluster, job.key)
    # at least once: the killed delivery and the one that finished are both in the log; Celery
    # may deliver the rejected message once more (seen once in a full CI run) — that copy's
    # answer is dropped, and what counts is that the job is published exactly once
    assert [a["delivery"] for a in seen][:2] == [1, 2]
    assert published.read_text().splitlines() == [f"pool-process-killed {done.result['worker']}"]


def test_replayed_earlier_attempt_output_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    """A genuine output sealed by w2 for attempt 1, replayed (by anyone who can write the
    result store) as the answer to attempt 2: dropped with an event, nothing published."""
    from nanodistro.factory import events
    from nanodistro.factory.distributed.executor import _Flight
    from nanodistro.factory.distributed.task import WorkerIdentity, execute
    from nanodistro.factory.remote import WorkerRegistry
    from nanodistro.factory.state import open_state

    published = tmp_path / "published"
    job = spec("replayed", publish_to=str(published))
    executor = cluster.executor()
    executor.store.submit(job)
    (first,) = executor.store.claim(1, executor.owner, keys=[job.key])
    identity = WorkerIdentity(
        "w2", WorkerRegistry(cluster.control).token_for("w2"), tmp_path / "work", tmp_path / "c"
    )
    message = {"key": job.key, "kind": "noop", "payload": {"value": "replayed", "sleep": 0},
               "attempt": first.attempts}  # fmt: skip
    old = execute(message, identity)  # attempt 1's output, kept by the attacker
    executor.store.fail(first, "lost", transient=True)
    time.sleep(0.3)  # the store's backoff (0.1 s in these tests)
    (second,) = executor.store.claim(1, executor.owner, keys=[job.key])
    assert second.attempts == first.attempts + 1
    outcome = executor._accept(_Flight(second, f"{job.key}-{second.attempts}"), old)
    assert outcome is not None and outcome.state != "succeeded"
    assert not published.exists()
    with open_state(cluster.state_url) as state:
        dropped = events.query(state, subject=f"job:{job.key}", types=["job-result-dropped"])
    assert any("answers attempt 1" in e.payload["reason"] for e in dropped), dropped


def test_output_for_a_payload_the_control_plane_did_not_send_is_refused(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Anyone on the broker (a revoked worker, say) queues a task for a real job with a payload
    of its own; an honest worker runs it and seals the output with ITS token. The control plane
    sent another payload for that attempt: the output is refused, nothing published."""
    from nanodistro.factory.distributed.executor import _Flight
    from nanodistro.factory.distributed.task import WorkerIdentity, execute
    from nanodistro.factory.remote import WorkerRegistry
    from nanodistro.factory.remote.channel import payload_digest

    published = tmp_path / "published"
    job = spec("asked", publish_to=str(published))
    executor = cluster.executor()
    executor.store.submit(job)
    (claimed,) = executor.store.claim(1, executor.owner, keys=[job.key])
    sent = executor.kinds["noop"].prepare(dict(claimed.inputs))
    identity = WorkerIdentity(
        "w1", WorkerRegistry(cluster.control).token_for("w1"), tmp_path / "work", tmp_path / "c"
    )
    injected = {"key": job.key, "kind": "noop", "attempt": claimed.attempts,
                "payload": {**sent, "sleep": 0.0, "extra": "attacker's"}}  # fmt: skip
    flight = _Flight(claimed, f"{job.key}-{claimed.attempts}", payload=payload_digest(sent))
    outcome = executor._accept(flight, execute(injected, identity))
    assert outcome is not None and outcome.state != "succeeded"
    assert "did not send" in (outcome.error or "")
    assert not published.exists()
    # the payload it did send, as a worker received it over JSON, is accepted
    honest = {**injected, "payload": json.loads(json.dumps(sent))}
    time.sleep(0.3)  # the refused attempt went back to the queue, after the backoff
    (again,) = executor.store.claim(1, executor.owner, keys=[job.key])
    honest["attempt"] = again.attempts
    flight = _Flight(again, f"{job.key}-{again.attempts}", payload=payload_digest(sent))
    done = executor._accept(flight, execute(honest, identity))
    assert done is not None and done.state == "succeeded"
    assert published.read_text().splitlines() == ["asked w1"]


def test_garbage_in_the_result_store_fails_the_attempt_not_the_control_plane(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Every worker can write the result store. A task record that is not JSON, nested past
    the decoder's limit or a STARTED record with a pid that is not a number used to raise out
    of the control plane's run (every job of the cycle stopped); now such an output is dropped
    with an event and the attempt fails as a forged one does."""
    from nanodistro.factory import events
    from nanodistro.factory.distributed.executor import _Flight
    from nanodistro.factory.state import open_state

    executor = cluster.executor()
    backend = executor.app.backend
    for number, garbage in enumerate((b"not json", b"[" * 100_000 + b"]" * 100_000)):
        job = spec(f"garbage-{number}", publish_to=str(tmp_path / "published"))
        executor.store.submit(job)
        (claimed,) = executor.store.claim(1, executor.owner, keys=[job.key])
        task_id = f"{job.key}-{claimed.attempts}"
        started = json.dumps({"status": "STARTED", "result": {"worker": "w1", "pid": "x"}})
        backend.client.set(backend.get_key_for_task(task_id), started)
        flights = {task_id: _Flight(claimed, task_id)}
        assert executor._poll(flights) == set() and task_id in flights
        backend.client.set(backend.get_key_for_task(task_id), garbage)
        executor._poll(flights)
        assert not flights
        row = executor.store.get(job.key)
        assert row is not None and row.state != "succeeded" and row.attempts == 1
        with open_state(cluster.state_url) as state:
            dropped = events.query(state, subject=f"job:{job.key}", types=["job-result-dropped"])
        assert ["expected a sealed worker output" in e.payload["reason"] for e in dropped] == [True]
    assert not (tmp_path / "published").exists()


def test_a_huge_error_from_a_worker_is_clipped_in_the_job_row(
    cluster: Cluster, tmp_path: Path
) -> None:
    from nanodistro.factory.distributed.executor import _Flight
    from nanodistro.factory.remote import WorkerRegistry, seal
    from nanodistro.factory.remote.channel import payload_digest

    executor = cluster.executor()
    job = spec("huge-error")
    executor.store.submit(job)
    (claimed,) = executor.store.claim(1, executor.owner, keys=[job.key])
    sent = executor.kinds["noop"].prepare(dict(claimed.inputs))
    envelope = {"error": "x" * 10_000_000, "transient": False, "payload": payload_digest(sent)}
    token = WorkerRegistry(cluster.control).token_for("w2")
    sealed = seal(envelope, job_key=job.key, attempt=claimed.attempts, worker="w2", token=token)
    flight = _Flight(claimed, f"{job.key}-{claimed.attempts}", payload=payload_digest(sent))
    outcome = executor._accept(flight, {"sealed": sealed})
    assert outcome is not None and outcome.state == "failed"
    assert len(outcome.error or "") < 5000 and "more)" in (outcome.error or "")
