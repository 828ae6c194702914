"""Benchmark: the Celery executor's cost per job against the local executor.

``--jobs`` (default 1,000) trivial ``noop`` jobs (factory/distributed/noop.py: the worker
echoes its payload; the control plane checks the echo) run through the real machinery: JobStore
on a SQLite state file (or ``--state-url``), a redis-server on a free loopback port started
here (Debian's redis-server), and 1, 2 and 4 ``nanodistro worker --pool solo`` processes (one
job at a time each). Baseline: the same jobs through LocalExecutor with a no-op handler on 4
threads. Printed per run: wall time, jobs per second, and the per-job overhead over the local
executor ((celery - local) / jobs): what sending, a worker's round trip, sealing, unsealing and
the accept-once check cost. Each run uses fresh job inputs, so nothing is a cache hit.

    .venv/bin/python bench/bench_distributed.py [--jobs 1000] [--workers 1,2,4]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from nanodistro.factory.distributed import noop
from nanodistro.factory.distributed.app import make_app
from nanodistro.factory.distributed.executor import CeleryExecutor
from nanodistro.factory.jobs import JobSpec, JobStore, LocalExecutor
from nanodistro.factory.remote import WorkerRegistry
from nanodistro.factory.state import open_state


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _redis(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    if shutil.which("redis-server") is None:
        sys.exit("redis-server is not installed (Debian package redis-server; make sysdeps)")
    port = _free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(root),
         "--save", "", "--appendonly", "yes", "--appendfsync", "everysec"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    sys.exit("redis-server did not start")


def _specs(count: int) -> list[JobSpec]:
    run = uuid.uuid4().hex[:8]  # fresh keys per run: every job really runs
    return [JobSpec("noop", {"value": f"{run}-{i}"}) for i in range(count)]


def _workers(root: Path, broker: str, count: int) -> list[subprocess.Popen[bytes]]:
    registry = WorkerRegistry(root / "control")
    started = []
    for number in range(count):
        name = f"bench-{count}-{number}"
        token = root / f"{name}.token"
        token.write_text(registry.create(name))
        token.chmod(0o600)
        command = [sys.executable, "-m", "nanodistro", "worker", "--name", name,
                   "--token-file", str(token), "--broker", broker, "--pool", "solo",
                   "--cache", str(root / f"{name}-cache"), "--loglevel", "WARNING"]  # fmt: skip
        started.append(
            subprocess.Popen(
                command,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, noop.TEST_KINDS_ENV: "1"},  # the noop kind: tests/bench only
            )
        )
    app = make_app(broker)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if len(app.control.inspect(timeout=0.5).ping() or {}) >= count:
            return started
    sys.exit(f"{count} workers did not answer within a minute")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--workers", default="1,2,4", help="worker process counts, comma-separated")
    parser.add_argument("--state-url", default=None, help="SQLAlchemy URL (default: SQLite file)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-distributed-"))
    server, broker = _redis(root)
    results: list[dict[str, Any]] = []
    try:
        state = open_state(args.state_url or f"sqlite:///{root / 'state.db'}")
        store = JobStore(state)
        local = LocalExecutor(store, {"noop": lambda inputs: {"echo": inputs["value"]}}, 4)
        started = time.monotonic()
        jobs = local.run(_specs(args.jobs))
        local_seconds = time.monotonic() - started
        assert all(job.state == "succeeded" for job in jobs)
        print(f"local executor, 4 threads: {args.jobs} jobs in {local_seconds:.2f} s "
              f"({args.jobs / local_seconds:.0f} jobs/s, {local_seconds / args.jobs * 1000:.2f} "
              "ms per job)")  # fmt: skip
        for count in [int(n) for n in args.workers.split(",") if n]:
            workers = _workers(root, broker, count)
            try:
                executor = CeleryExecutor(
                    store,
                    {"noop": noop.control_kind()},
                    make_app(broker),
                    token_for=WorkerRegistry(root / "control").token_for,
                )
                started = time.monotonic()
                jobs = executor.run(_specs(args.jobs))
                seconds = time.monotonic() - started
            finally:
                for worker in workers:
                    os.killpg(worker.pid, signal.SIGKILL)
                    worker.wait()
            failed = [job.error for job in jobs if job.state != "succeeded"]
            assert not failed, failed[:3]
            overhead = (seconds - local_seconds) / args.jobs * 1000
            results.append({"workers": count, "seconds": seconds})
            print(f"celery, {count} worker process{'es' if count > 1 else ''}: {args.jobs} jobs "
                  f"in {seconds:.2f} s ({args.jobs / seconds:.0f} jobs/s, "
                  f"{seconds / args.jobs * 1000:.2f} ms per job; overhead over local "
                  f"{overhead:+.2f} ms per job)")  # fmt: skip
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
