"""Durable jobs on SQLite and a real PostgreSQL: the same work runs once, transient failures retry
with backoff, permanent ones stay failed, concurrency is bounded, and a job whose process was
killed with SIGKILL is redone by the next executor and its result recorded once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from nanodistro.errors import BuildError, FetchError, TransientError
from nanodistro.factory.jobs import (
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    JobSpec,
    JobStore,
    LocalExecutor,
    owner_alive,
    process_owner,
)
from nanodistro.factory.state import State, open_state
from nanodistro.factory.state.models import JobRow
from postgres_server import state_url  # noqa: F401  (pytest fixture)

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def state(state_url: str) -> Any:  # noqa: F811
    with open_state(state_url) as opened:
        yield opened


def _spec(**inputs: Any) -> JobSpec:
    return JobSpec("build", {"recipe": "zlib", "sha256": "ab" * 32, **inputs})


def test_key_is_the_digest_of_kind_and_canonical_inputs() -> None:
    one = JobSpec("build", {"b": [1, 2], "a": "x"})
    assert one.key == JobSpec("build", {"a": "x", "b": [1, 2]}, max_attempts=9).key
    assert one.key != JobSpec("test", {"a": "x", "b": [1, 2]}).key
    assert one.key != JobSpec("build", {"a": "x", "b": [2, 1]}).key
    import hashlib

    assert one.key == hashlib.sha256(b'build\0{"a":"x","b":[1,2]}').hexdigest()


def test_the_same_spec_twice_is_one_job_run_once(state: State) -> None:
    calls: list[dict[str, Any]] = []

    def build(inputs: dict[str, Any]) -> dict[str, Any]:
        calls.append(inputs)
        return {"package": f"{inputs['recipe']}-1.3.apk"}

    executor = LocalExecutor(JobStore(state), {"build": build}, concurrency=2)
    first = executor.run([_spec(), _spec()])
    again = executor.run([_spec()])
    assert len(calls) == 1
    assert first[0] == first[1] == again[0]
    assert again[0].state == SUCCEEDED
    assert again[0].result == {"package": "zlib-1.3.apk"}
    assert again[0].attempts == 1
    assert JobStore(state).submit(_spec()).id == again[0].id


def test_a_transient_failure_retries_with_backoff_then_succeeds(state: State) -> None:
    called: list[float] = []

    def fetch(inputs: dict[str, Any]) -> dict[str, Any]:
        called.append(time.monotonic())
        if len(called) == 1:
            raise FetchError("HTTP 503", where="http://127.0.0.1/src.tar.gz")
        if len(called) == 2:
            raise TransientError("index locked")
        return {"ok": True}

    store = JobStore(state, backoff=0.2)
    [job] = LocalExecutor(store, {"build": fetch}).run([_spec()])
    assert job.state == SUCCEEDED and job.result == {"ok": True}
    assert job.attempts == 3 and job.error is None
    # backoff doubles: >= 0.2 s before the 2nd attempt, >= 0.4 s before the 3rd
    assert called[1] - called[0] >= 0.2
    assert called[2] - called[1] >= 0.4


def test_retries_end_when_attempts_run_out(state: State) -> None:
    calls = Counter[str]()

    def flaky(inputs: dict[str, Any]) -> dict[str, Any]:
        calls["n"] += 1
        raise FetchError("timed out", where="http://127.0.0.1:1/")

    spec = JobSpec("fetch", {"url": "http://127.0.0.1:1/"}, max_attempts=2)
    [job] = LocalExecutor(JobStore(state, backoff=0.01), {"fetch": flaky}).run([spec])
    assert (job.state, job.attempts, calls["n"]) == (FAILED, 2, 2)
    assert job.error == "http://127.0.0.1:1/: timed out"


def test_backoff_is_recorded_in_not_before(state: State) -> None:
    store = JobStore(state, backoff=30, max_backoff=100)
    store.submit(JobSpec("build", {"n": 1}, max_attempts=5))
    delays = []
    for _ in range(4):
        [job] = store.claim(1, "here:1:1")
        before = datetime.now(UTC)
        queued = store.fail(job, "busy", transient=True)
        assert queued.state == QUEUED and queued.owner is None and queued.error == "busy"
        delays.append(round((queued.not_before - before).total_seconds()))
        assert store.claim(1, "here:1:1") == []
        with state.session() as session, session.begin():  # let the backoff pass
            session.get_one(JobRow, job.id).not_before = datetime.now(UTC)
    assert delays == [30, 60, 100, 100]
    [job] = store.claim(1, "here:1:1")
    assert store.fail(job, "busy", transient=True).state == FAILED  # 5th of 5 attempts


def test_a_permanent_failure_is_not_retried_by_a_second_submit(state: State) -> None:
    calls = Counter[str]()

    def broken(inputs: dict[str, Any]) -> dict[str, Any]:
        calls["n"] += 1
        raise BuildError("step 2 (make) failed", where="/ws/out/logs/zlib.log")

    executor = LocalExecutor(JobStore(state), {"build": broken})
    [job] = executor.run([_spec()])
    assert (job.state, job.attempts) == (FAILED, 1)
    assert job.error == "/ws/out/logs/zlib.log: step 2 (make) failed"
    [again] = executor.run([_spec()])
    assert again == job and calls["n"] == 1
    # on request (inputs fixed elsewhere, or a flaky machine) it runs again
    assert JobStore(state).submit(_spec(), retry_failed=True).state == QUEUED
    [third] = executor.run([_spec()])
    assert calls["n"] == 2 and third.attempts == 1


def test_a_handler_bug_fails_its_job_not_the_run(state: State) -> None:
    def handler(inputs: dict[str, Any]) -> dict[str, Any]:
        if inputs["n"] == 1:
            raise KeyError("version")
        if inputs["n"] == 2:
            return {"when": datetime.now(UTC)}  # type: ignore[dict-item]  # not JSON
        return {"n": inputs["n"]}

    jobs = LocalExecutor(JobStore(state), {"k": handler}).run(
        [JobSpec("k", {"n": n}) for n in (1, 2, 3)]
    )
    assert [j.state for j in jobs] == [FAILED, FAILED, SUCCEEDED]
    assert jobs[0].error == "unexpected failure (a bug; please report it): 'version'"
    assert jobs[1].error is not None and "plain JSON" in jobs[1].error


@pytest.mark.parametrize("limit", [1, 3])
def test_concurrency_is_bounded(state: State, limit: int) -> None:
    lock = threading.Lock()
    running = 0
    most = 0
    # every handler waits until `limit` of them run at once: with fewer slots this times out
    # (BrokenBarrierError fails the jobs), with more the counter shows it
    together = threading.Barrier(limit, timeout=30)

    def handler(inputs: dict[str, Any]) -> dict[str, Any]:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        try:
            together.wait()
        finally:
            with lock:
                running -= 1
        return {}

    specs = [JobSpec("k", {"n": n}) for n in range(3 * limit)]
    jobs = LocalExecutor(JobStore(state), {"k": handler}, concurrency=limit).run(specs)
    assert [j.state for j in jobs] == [SUCCEEDED] * len(specs)
    assert most == limit


def test_two_executors_on_one_database_run_each_job_once(state: State, state_url: str) -> None:  # noqa: F811
    runs = Counter[int]()
    lock = threading.Lock()

    def handler(inputs: dict[str, Any]) -> dict[str, Any]:
        with lock:
            runs[inputs["n"]] += 1
        time.sleep(0.01)
        return {"n": inputs["n"]}

    specs = [JobSpec("k", {"n": n}) for n in range(24)]
    results: list[list[Any]] = []

    def one_executor() -> None:
        # its own engine and connections, as another process would have
        with open_state(state_url) as own:
            results.append(LocalExecutor(JobStore(own), {"k": handler}, concurrency=3).run(specs))

    threads = [threading.Thread(target=one_executor) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(results) == 2
    assert runs == Counter(range(24))  # every job exactly once
    for jobs in results:
        assert [(j.state, j.result) for j in jobs] == [(SUCCEEDED, {"n": n}) for n in range(24)]


def test_default_concurrency_is_the_cpu_count(state: State) -> None:
    assert LocalExecutor(JobStore(state), {}).concurrency == (os.cpu_count() or 1)


def test_recover_leaves_live_owners_and_requeues_dead_ones(state: State) -> None:
    store = JobStore(state)
    for n in range(3):
        store.submit(JobSpec("k", {"n": n}, max_attempts=1 if n == 2 else 3))
    me = process_owner()
    host, pid, ticks = me.rsplit(":", 2)
    reused_pid = f"{host}:{pid}:{int(ticks) + 1}"  # our pid, another process's start time
    elsewhere = f"other-host.example:{pid}:{ticks}"
    [alive] = store.claim(1, me)
    [dead] = store.claim(1, reused_pid)
    [last] = store.claim(1, f"{host}:999999999:1")
    assert owner_alive(me) is True
    assert owner_alive(reused_pid) is False
    assert owner_alive(elsewhere) is None

    recovered = {job.key: job for job in store.recover()}
    assert set(recovered) == {dead.key, last.key}
    assert recovered[dead.key].state == QUEUED and recovered[dead.key].owner is None
    assert "died during attempt 1" in (recovered[dead.key].error or "")
    assert recovered[last.key].state == FAILED  # that was its only attempt
    assert store.get(alive.key) == alive and alive.state == RUNNING
    # the presumed-dead worker cannot record an outcome over the recovered job
    with pytest.raises(Exception, match="no longer running"):
        store.succeed(dead, {"late": True})


_CRASHING_WORKER = """
import os, sys, time
from pathlib import Path
from nanodistro.factory.jobs import JobSpec, JobStore, LocalExecutor
from nanodistro.factory.state import open_state

url, marks = sys.argv[1], Path(sys.argv[2])

def publish(inputs):
    (marks / f"run-{os.getpid()}").write_text("started")
    time.sleep(600)  # killed here, mid-publish
    raise AssertionError("not killed")

LocalExecutor(JobStore(open_state(url)), {"publish": publish}).run(
    [JobSpec("publish", {"package": "zlib-1.3.apk", "sha256": "cd" * 32})]
)
"""


def test_a_job_killed_with_sigkill_is_redone_once_by_the_next_executor(
    state: State,
    state_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    published = tmp_path / "published.txt"
    spec = JobSpec("publish", {"package": "zlib-1.3.apk", "sha256": "cd" * 32})
    worker = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_CRASHING_WORKER), state_url, str(marks)],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")},
    )
    try:
        deadline = time.monotonic() + 60
        while not list(marks.iterdir()):
            assert worker.poll() is None, "the worker exited before running the job"
            assert time.monotonic() < deadline, "the worker never started the job"
            time.sleep(0.05)
        store = JobStore(state)
        running = store.get(spec.key)
        assert running is not None and running.state == RUNNING
        assert running.owner is not None and f":{worker.pid}:" in running.owner
        os.kill(worker.pid, signal.SIGKILL)
    finally:
        worker.kill()
        worker.wait()
    assert worker.returncode == -signal.SIGKILL

    def publish(inputs: dict[str, Any]) -> dict[str, Any]:
        (marks / f"run-{os.getpid()}").write_text("started")
        with published.open("a") as out:  # the one visible effect, done only on success
            out.write(f"{inputs['package']} {inputs['sha256']}\n")
        return {"published": inputs["package"]}

    [job] = LocalExecutor(JobStore(state), {"publish": publish}).run([spec])
    assert job.state == SUCCEEDED
    assert job.result == {"published": "zlib-1.3.apk"}
    assert job.attempts == 2  # the killed attempt and the one that finished
    assert job.owner == process_owner()
    assert sorted(p.name for p in marks.iterdir()) == sorted(
        [f"run-{worker.pid}", f"run-{os.getpid()}"]
    )
    assert published.read_text() == f"zlib-1.3.apk {'cd' * 32}\n"
    # and a later start finds nothing to redo
    assert JobStore(state).recover() == []
    LocalExecutor(JobStore(state), {"publish": publish}).run([spec])
    assert published.read_text().count("\n") == 1


def test_each_job_writes_its_own_log_recorded_before_it_starts(
    state: State, tmp_path: Path
) -> None:
    from nanodistro.factory.joblog import teeing

    said: list[str] = []
    say = teeing(said.append)
    seen_while_running: dict[str, str | None] = {}
    store = JobStore(state, log_dir=tmp_path / "jobs")

    def handler(inputs: dict[str, Any]) -> dict[str, Any]:
        name = inputs["name"]
        running = store.get(JobSpec("greet", {"name": name}).key)
        assert running is not None
        seen_while_running[name] = running.log_path  # a console can follow it from here
        say(f"hello from {name}")
        if name == "bad":
            raise BuildError("the bad one fails")
        return {}

    specs = [JobSpec("greet", {"name": n}) for n in ("a", "b", "bad")]
    jobs = LocalExecutor(store, {"greet": handler}, concurrency=3).run(specs)
    say("said by the cycle, not by a job")
    assert sorted(said)[0] == "hello from a" and len(said) == 4
    for job in jobs:
        name = job.inputs["name"]
        assert job.log_path == seen_while_running[name] == str(tmp_path / "jobs" / f"{job.id}.log")
        lines = Path(job.log_path).read_text().splitlines()
        assert [line.split(" ", 1)[1] for line in lines] == [
            f"greet job {job.id}, attempt 1/{job.max_attempts}",
            f"hello from {name}",  # only its own lines, though the three ran at once
            "failed: the bad one fails" if name == "bad" else "succeeded",
        ]
