"""A real redis-server on 127.0.0.1 for the distributed factory tests (Debian's redis-server).

``RedisServer`` runs one in a temporary directory with an append-only file synced on every
write, as a broker should be run: a restart (``restart()``) keeps the queued and unacknowledged
messages. ``redis_server()`` starts one per test process on first use (stopped at exit)::

    from redis_server import redis_server

    server = redis_server()   # server.url(0) -> "redis://127.0.0.1:<port>/0"

Without redis-server or the redis client library the test is skipped locally and fails under
``CI``.
"""

from __future__ import annotations

import atexit
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from needs_tools import require_tools

_server: RedisServer | None = None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="nanodistro-redis-"))
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.root / "server.log").open("ab")
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.root), "--appendonly", "yes", "--appendfsync", "always",
             "--save", "", "--daemonize", "no", "--logfile", ""],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + 30
        while not self.ping():
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = (self.root / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server did not start:\n{tail}")
            time.sleep(0.05)

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def halt(self) -> None:
        """Stop the server (SIGTERM: it flushes the append-only file), keeping its data."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.process = None

    def restart(self, down: float = 0.0) -> None:
        self.halt()
        time.sleep(down)
        self.start()

    def stop(self) -> None:
        try:
            self.halt()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{database}"


def require_redis() -> None:
    """Skip (locally) or fail (CI) when redis-server or the Celery/redis libraries are missing."""
    require_tools("redis-server")
    import pytest

    pytest.importorskip("celery")
    pytest.importorskip("redis")


def redis_server() -> RedisServer:
    """The test process's server, started on first use."""
    global _server
    if _server is None:
        require_redis()
        server = RedisServer()
        server.start()
        atexit.register(server.stop)
        _server = server
    return _server
