"""Opening the state database: engine, sessions, and the schema migrated to the newest revision."""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from nanodistro.errors import ConfigError, StateError

if TYPE_CHECKING:
    from nanodistro.factory.workspace import Workspace

__all__ = ["State", "default_state_url", "open_state", "workspace_state_url"]

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest revision in migrations/versions (tests check): a database already there is opened
# without importing Alembic at all, which keeps every factory command quick to start.
HEAD_REVISION = "0003"
# Any constant: concurrent first opens of one PostgreSQL database take turns migrating it.
_PG_MIGRATION_LOCK = 0x6E616E6F
_SQLITE_BUSY_MS = 30_000
# Alembic's ``context``/``op`` are process-wide proxies: two migrations on threads at once (two
# databases) would each see the other's connection.
_ALEMBIC = threading.Lock()


@dataclass
class State:
    """An open state database. ``session()`` gives a new ORM session (one per unit of work,
    one per thread); ``close()`` releases the connections."""

    url: str
    engine: Engine
    sessions: sessionmaker[Session]

    def session(self) -> Session:
        return self.sessions()

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> State:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def default_state_url(workspace_root: Path) -> str:
    """``sqlite:///<root>/.nanodistro/state.db``; creates the folder."""
    folder = Path(workspace_root).resolve() / ".nanodistro"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'state.db'}"


def workspace_state_url(workspace: Workspace) -> str:
    """The workspace's ``[state] url``, else its default SQLite file."""
    return workspace.state_url or default_state_url(workspace.root)


def _wal(cursor: Any) -> None:
    """Switch the file to WAL (readers never block the writer; the mode stays with the file).

    Switching needs an exclusive lock, and SQLite reports a busy database for it at once instead
    of waiting, so several processes creating one database together retry here.
    """
    deadline = time.monotonic() + _SQLITE_BUSY_MS / 1000
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _sqlite_engine(url: Any, *, read_only: bool = False) -> Engine:
    database = url.database or ""
    memory = database in ("", ":memory:") or database.startswith("file::memory:")
    if not memory:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        # The local executor runs jobs on threads; each thread checks out its own connection,
        # except for an in-memory database, which exists once per connection.
        connect_args={"check_same_thread": False, "timeout": _SQLITE_BUSY_MS / 1000},
        poolclass=StaticPool if memory else None,
    )

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, record: Any) -> None:
        # The driver's own transaction handling is off so that "begin" below decides: every
        # transaction takes the write lock up front (BEGIN IMMEDIATE). A deferred transaction
        # that reads and then writes fails at once with "database is locked" when another
        # writer got in between, busy timeout or not.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_MS}")
        if not memory:
            _wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        if read_only:
            cursor.execute("PRAGMA query_only=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        # A reader's deferred transaction sees one WAL snapshot and never waits for the writer.
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def _engine(url_text: str, *, read_only: bool = False) -> Engine:
    try:
        url = make_url(url_text)
    except ArgumentError as error:
        raise ConfigError(f"not a database URL: {error}", field="state.url") from None
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")  # psycopg 3, not SQLAlchemy's psycopg2
    try:
        if url.get_backend_name() == "sqlite":
            return _sqlite_engine(url, read_only=read_only)
        return create_engine(url, pool_pre_ping=True)
    except ModuleNotFoundError as error:
        raise ConfigError(
            f"the database driver for {url.drivername} is not installed ({error.name}); "
            "for PostgreSQL: pip install 'psycopg[binary]'",
            field="state.url",
        ) from None
    except (ArgumentError, SQLAlchemyError) as error:
        raise ConfigError(f"unusable database URL: {error}", field="state.url") from None


def _at_head(engine: Engine) -> bool:
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return False
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    return [version for (version,) in versions] == [HEAD_REVISION]


def _migrate(engine: Engine) -> None:
    """Upgrade the schema to the newest revision, in one transaction."""
    if _at_head(engine):
        return
    from alembic import command
    from alembic.config import Config

    config = Config()
    # The scripts ship inside the package, so this resolves wherever nanodistro is installed.
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
            )
        config.attributes["connection"] = connection
        with _ALEMBIC:
            command.upgrade(config, "head")


def open_state(url: str, *, read_only: bool = False) -> State:
    """Open (and create or migrate) the state database at SQLAlchemy ``url``.

    ``read_only``: for readers beside a writer in the same process (the console beside its
    factory runner): on SQLite its transactions are deferred (readers of the WAL never wait for
    the writer) and any write fails; open the writer first, which migrates."""
    engine = _engine(url, read_only=read_only)
    shown = engine.url.render_as_string(hide_password=True)
    try:
        if not read_only:
            _migrate(engine)
    except SQLAlchemyError as error:
        engine.dispose()
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        raise StateError(f"cannot open the state database: {reason}", where=shown) from None
    return State(url=shown, engine=engine, sessions=sessionmaker(engine, expire_on_commit=False))
