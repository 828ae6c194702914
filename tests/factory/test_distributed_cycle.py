"""The miniature catalog's factory cycle on Celery: redis-server, PostgreSQL state and two
``nanodistro worker`` processes give the same repository (package bytes) and the same image
digests as the local executor. Workers build and test; the control plane signs and publishes.

One worker is SIGKILLed (with its pool process and the build under it) mid-build (frozen first,
then killed only if the result store says the build is still running there): the build is
redelivered to the other worker, the event log shows both deliveries, every package is
published once, and the repository is still byte-identical to the local one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mini_catalog import factory_once, serve_upstream, write_workspace
from needs_tools import require_tools
from postgres_server import postgres
from redis_server import RedisServer, require_redis

pytestmark = pytest.mark.slow

# the job of a worker that vanished goes to another after this many seconds (short for tests)
VISIBILITY = 5


def _packages(root: Path) -> dict[str, str]:
    """sha256 of every package file of the repository's version 1."""
    folder = root / "out/packages/versions/1"
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*.apk"))
    }


def _images(report: dict[str, Any]) -> dict[str, str]:
    return {image["name"]: image["digest"] for image in report["catalog"]["images"]}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The workspace (with its keys, made once) both executors start from."""
    require_tools("bwrap", "gcc", "umoci", "runc")
    require_redis()
    base = tmp_path_factory.mktemp("catalog")
    with serve_upstream(base) as (url, digests):
        root = write_workspace(base / "template" / "ws", url, digests)
        from nanodistro.factory.catalog import ensure_keys
        from nanodistro.factory.workspace import load_workspace

        ensure_keys(load_workspace(root), lambda _message: None)
        yield root


def _copy(template: Path, target: Path) -> Path:
    root = target / "ws"  # the same folder name: nothing differs but the executor
    shutil.copytree(template, root, symlinks=True)
    return root


def _start_worker(root: Path, name: str, broker: str) -> subprocess.Popen[bytes]:
    from nanodistro.factory.remote import WorkerRegistry

    token = root.parent / f"{name}.token"
    token.write_text(WorkerRegistry.for_workspace(root).create(name))
    token.chmod(0o600)
    log = (root.parent / f"{name}.log").open("ab")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "nanodistro", "worker", "--name", name,
             "--token-file", str(token), "--broker", broker,
             "--cache", str(root.parent / f"{name}-cache"), "--visibility-timeout", str(VISIBILITY), "--loglevel", "WARNING"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            cwd=root.parent,  # not the workspace: a worker reads none
        )  # fmt: skip
    finally:
        log.close()


def _still_running(broker: str, task_id: str, worker: str) -> bool:
    """Whether the result store says ``task_id`` is running on ``worker`` (STARTED, no
    result yet)."""
    import redis as redis_client

    client = redis_client.Redis.from_url(broker)
    try:
        raw = client.get(f"celery-task-meta-{task_id}")
    finally:
        client.close()
    meta = json.loads(raw) if raw else {}
    result = meta.get("result")
    return (
        meta.get("status") == "STARTED"
        and isinstance(result, dict)
        and result.get("worker") == worker
    )


def _kill_a_running_build(
    state_url: str,
    broker: str,
    workers: dict[str, subprocess.Popen[bytes]],
    killed: dict[str, str],
    stop: threading.Event,
) -> None:
    """SIGKILL the worker (with its pool process and the build under it) a build job is
    running on, mid-build. The job-attempt event says a build started on a worker; by the
    time it is read the build may have finished, so the worker's processes are frozen first
    (SIGSTOP: a frozen worker cannot store a result or acknowledge the message), and only if
    the result store still says STARTED on that worker is it killed; otherwise it is let go
    (SIGCONT) and the next build is tried."""
    from nanodistro.factory import events
    from nanodistro.factory.jobs import JobStore
    from nanodistro.factory.state import open_state

    tried: set[str] = set()
    while not stop.is_set():
        try:
            with open_state(state_url) as state:
                started = events.query(state, types=["job-attempt"])
                jobs = JobStore(state).jobs(e.payload["key"] for e in started)
        except Exception:  # the cycle has not created the schema yet
            started, jobs = [], {}
        for event in started:
            attempt = event.payload
            task_id = f"{attempt['key']}-{attempt['attempt']}"
            if attempt["kind"] != "build" or task_id in tried:
                continue
            tried.add(task_id)
            group = workers[attempt["worker"]].pid
            os.killpg(group, signal.SIGSTOP)
            time.sleep(0.3)  # a result sent just before the freeze lands first
            if _still_running(broker, task_id, attempt["worker"]):
                recipe = jobs[attempt["key"]].inputs["recipe"]
                killed.update(key=attempt["key"], worker=attempt["worker"], recipe=recipe)
                os.killpg(group, signal.SIGKILL)
                return
            os.killpg(group, signal.SIGCONT)
        stop.wait(0.05)


def test_celery_cycle_publishes_what_the_local_cycle_publishes(
    template: Path, tmp_path: Path
) -> None:
    local_root = _copy(template, tmp_path / "local")
    local = factory_once(local_root)
    assert local["status"] == "promoted", local

    root = _copy(template, tmp_path / "celery")
    redis = RedisServer()
    redis.start()
    state_url = postgres().new_database()
    with (root / "nanodistro.toml").open("a") as toml:
        toml.write(
            f'\n[executor]\nkind = "celery"\nbroker = "{redis.url()}"\n'
            f'\n[state]\nurl = "{state_url}"\n'
        )
    workers = {name: _start_worker(root, name, redis.url()) for name in ("w1", "w2")}
    killed: dict[str, str] = {}
    stop = threading.Event()
    killer = threading.Thread(
        target=_kill_a_running_build, args=(state_url, redis.url(), workers, killed, stop)
    )
    killer.start()
    try:
        report = factory_once(root)
    finally:
        stop.set()
        killer.join()
        for worker in workers.values():
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=30)
        redis.stop()
    logs = {p.name: p.read_text(errors="replace")[-3000:] for p in tmp_path.glob("celery/*.log")}
    assert report["status"] == "promoted", (report.get("notes"), logs)
    assert {b["recipe"]: b["status"] for b in report["builds"]} == {
        b["recipe"]: b["status"] for b in local["builds"]
    }
    assert _packages(root) == _packages(local_root)
    assert _images(report) == _images(local)
    assert not (root / ".nanodistro" / "state.db").exists()  # the state is in PostgreSQL

    from nanodistro.factory import events
    from nanodistro.factory.state import open_state

    with open_state(state_url) as state:
        attempts = events.query(state, types=["job-attempt"])
        published = events.query(state, types=["published"])
    assert {e.payload["kind"] for e in attempts} >= {"build", "image"}
    assert {e.payload["worker"] for e in attempts} <= {"w1", "w2"}
    # the killed build: delivered to the killed worker, then to the other one
    assert killed, f"no build job was caught running: {logs}"
    other = ({"w1", "w2"} - {killed["worker"]}).pop()
    deliveries = [
        (e.payload["worker"], e.payload["delivery"])
        for e in attempts
        if e.payload["key"] == killed["key"]
    ]
    assert deliveries == [(killed["worker"], 1), (other, 2)]
    # each package published once
    files = [e.payload["file"] for e in published]
    assert len(files) == len(set(files)) == len(_packages(root))
