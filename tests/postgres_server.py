"""A real PostgreSQL on 127.0.0.1 for the factory state tests (Debian's postgresql package).

One server per test process, started on first use in a temporary directory (``initdb`` +
``pg_ctl``, as the unprivileged ``nobody`` when the tests run as root: PostgreSQL refuses to run
as root) and stopped at exit; each test gets a database of its own. Use the fixture::

    from postgres_server import state_url  # noqa: F401  (pytest fixture)

    def test_x(state_url): ...   # runs twice: a SQLite file, then a fresh PostgreSQL database

Without PostgreSQL or psycopg the PostgreSQL half is skipped locally and fails under ``CI``.
"""

from __future__ import annotations

import atexit
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_server: PostgresServer | None = None
_databases = itertools.count(1)


def postgres_bin() -> Path | None:
    """The newest /usr/lib/postgresql/<major>/bin holding initdb and pg_ctl."""
    found = [
        p.parent
        for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")
        if (p.parent / "pg_ctl").is_file()
    ]
    return max(found, key=lambda b: int(b.parent.name), default=None) if found else None


def require_postgres() -> Path:
    """The server binaries, after checking psycopg is importable; skip (locally) or fail (CI)."""
    missing = []
    binaries = postgres_bin()
    if binaries is None:
        missing.append("PostgreSQL server (Debian package postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        missing.append("psycopg (pip install 'psycopg[binary]')")
    if missing:
        message = f"not installed: {', '.join(missing)} (run `make sysdeps venv`)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must have every tool `make test` relies on")
        pytest.skip(message)
    assert binaries is not None
    return binaries


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PostgresServer:
    def __init__(self, binaries: Path) -> None:
        self.binaries = binaries
        self.root = Path(tempfile.mkdtemp(prefix="nanodistro-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        # PostgreSQL will not run as root; nobody needs to own (and reach) its directory.
        self.user = "nobody" if os.geteuid() == 0 else None
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)

    def _run(self, *args: str) -> None:
        prefix = ["runuser", "-u", self.user, "--"] if self.user else []
        result = subprocess.run(
            [*prefix, *args], capture_output=True, text=True, check=False, timeout=120
        )
        if result.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{args[0]} failed: {result.stderr}{result.stdout}\n{tail}")

    def start(self) -> None:
        bin_ = self.binaries
        self._run(str(bin_ / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                  "-E", "UTF8", "--no-sync")  # fmt: skip
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root} -F -c max_connections=200"
        self._run(str(bin_ / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"),
                  "-o", options, "-w", "-t", "60", "start")  # fmt: skip

    def stop(self) -> None:
        try:
            self._run(str(self.binaries / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                      "-w", "stop")  # fmt: skip
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh empty database's SQLAlchemy URL."""
        import psycopg

        name = f"test_{os.getpid()}_{next(_databases)}"
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def postgres() -> PostgresServer:
    """The test process's server, started on first use."""
    global _server
    if _server is None:
        server = PostgresServer(require_postgres())
        server.start()
        atexit.register(server.stop)
        _server = server
    return _server


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A state database URL on each backend: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
    else:
        yield postgres().new_database()
