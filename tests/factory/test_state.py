"""The factory's state database: migrated on open (SQLite and a real PostgreSQL), the models agree
with the migration, the event log is append-only in the database itself, and events query right."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import setuptools
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

import nanodistro
from nanodistro.errors import ConfigError, StateError
from nanodistro.factory import events
from nanodistro.factory.state import open_state
from nanodistro.factory.state.db import HEAD_REVISION, MIGRATIONS
from nanodistro.factory.state.models import Base
from nanodistro.factory.workspace import load_workspace
from postgres_server import state_url  # noqa: F401  (pytest fixture)

TABLES = {"upstream_releases", "recipe_versions", "packages", "images", "jobs", "events"}


def _head() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


@pytest.fixture
def statements() -> Iterator[list[str]]:
    """Every SQL statement any engine runs while the test runs."""
    seen: list[str] = []

    def remember(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", remember)
    yield seen
    event.remove(Engine, "before_cursor_execute", remember)


def test_fresh_database_is_migrated_to_head_and_reopening_changes_nothing(
    state_url: str,  # noqa: F811
    statements: list[str],
) -> None:
    with open_state(state_url) as state:
        names = set(inspect(state.engine).get_table_names())
        assert names >= TABLES | {"alembic_version"}
        with state.engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
        assert [v for (v,) in versions] == [_head()] == [HEAD_REVISION]
        assert any(s.lstrip().upper().startswith("CREATE TABLE") for s in statements)
        events.record(state, events.PROMOTED, "channel:stable", {"version": 3})

    statements.clear()
    with open_state(state_url) as state:
        with state.engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
        assert [v for (v,) in versions] == [HEAD_REVISION]
        assert [e.payload for e in events.query(state)] == [{"version": 3}]
    ddl = ("CREATE", "ALTER", "DROP", "INSERT INTO ALEMBIC", "UPDATE ALEMBIC")
    assert not [s for s in statements if s.lstrip().upper().startswith(ddl)]


def test_opening_a_current_database_does_not_load_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    open_state(url).close()
    code = (
        "import sys\n"
        "from nanodistro.factory.state import open_state\n"
        f"open_state({url!r}).close()\n"
        "print('alembic' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout == "False\n"


def test_models_match_the_migrated_schema(state_url: str) -> None:  # noqa: F811
    with open_state(state_url) as state, state.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_concurrent_first_opens_migrate_once(state_url: str) -> None:  # noqa: F811
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            start.wait(timeout=30)
            open_state(state_url).close()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert [f"{type(e).__name__}: {e}" for e in errors] == []
    with open_state(state_url) as state, state.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1


def test_the_database_refuses_to_edit_or_delete_events(state_url: str) -> None:  # noqa: F811
    with open_state(state_url) as state:
        recorded = events.record(state, events.BUILD_FAILED, "recipe:zlib", {"log": "a.log"})
        # the attack: rewrite history behind the API's back
        for attack in (
            "UPDATE events SET type = 'build-succeeded'",
            "DELETE FROM events",
        ):
            with pytest.raises(DBAPIError, match="append-only"), state.engine.begin() as conn:
                conn.execute(text(attack))
        assert events.query(state) == [recorded]
        assert not [n for n in dir(events) if n.startswith(("update", "delete", "remove"))]


def test_events_by_subject_since_and_type_in_log_order(state_url: str) -> None:  # noqa: F811
    base = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    plus_two = timezone(timedelta(hours=2))
    with open_state(state_url) as state:
        first = events.record(state, events.RELEASE_DETECTED, "recipe:zlib", {"version": "1.3.1"},
                              time=base)  # fmt: skip
        second = events.record(
            state, events.BUILD_STARTED, "recipe:zlib", time=base + timedelta(hours=1)
        )
        # recorded later but stamped earlier (a clock step): the log keeps recording order
        third = events.record(state, events.IMAGE_BUILT, "image:python", {"digest": "sha256:ab"},
                              time=base - timedelta(hours=1))  # fmt: skip
        # a time in another zone is the same instant in UTC
        fourth = events.record(state, events.BUILD_SUCCEEDED, "recipe:zlib_x",
                               time=datetime(2025, 3, 1, 16, 0, tzinfo=plus_two))  # fmt: skip

        assert events.query(state) == [first, second, third, fourth]
        assert fourth.time == datetime(2025, 3, 1, 14, 0, tzinfo=UTC)
        assert all(e.time.tzinfo is not None for e in events.query(state))
        assert events.query(state, subject="recipe:zlib") == [first, second]
        assert events.query(state, subject="recipe:") == [first, second, fourth]
        assert events.query(state, subject="recipe:zlib_") == []  # "_" is not a wildcard
        assert events.query(state, since=base + timedelta(hours=1)) == [second, fourth]
        assert events.query(state, types=[events.IMAGE_BUILT, events.BUILD_STARTED]) == [
            second,
            third,
        ]
        assert events.query(state, subject="recipe:zlib", since=base, types=["build-started"]) == [
            second
        ]
        assert first.to_json() == {
            "id": first.id,
            "type": "release-detected",
            "subject": "recipe:zlib",
            "time": "2025-03-01T12:00:00.000000Z",
            "payload": {"version": "1.3.1"},
        }


def test_events_refuse_unknown_types_subjects_and_naive_times(tmp_path: Path) -> None:
    with open_state(f"sqlite:///{tmp_path / 's.db'}") as state:
        with pytest.raises(ConfigError, match="did you mean 'build-failed'"):
            events.record(state, "build-fail", "recipe:zlib")
        with pytest.raises(ConfigError, match="kind one of recipe, package"):
            events.record(state, events.PROMOTED, "stable")
        with pytest.raises(ConfigError, match="timezone-aware"):
            events.record(state, events.PROMOTED, "channel:stable", time=datetime(2025, 1, 1))
        with pytest.raises(ConfigError, match="timezone-aware"):
            events.query(state, since=datetime(2025, 1, 1))
        assert events.query(state) == []


def test_workspace_state_url(tmp_path: Path) -> None:
    from nanodistro.factory.state import workspace_state_url

    (tmp_path / "nanodistro.toml").write_text("")
    assert workspace_state_url(load_workspace(tmp_path)) == (
        f"sqlite:///{tmp_path.resolve()}/.nanodistro/state.db"
    )
    assert (tmp_path / ".nanodistro").is_dir()
    (tmp_path / "nanodistro.toml").write_text('[state]\nurl = "sqlite:///db/state.db"\n')
    assert load_workspace(tmp_path).state_url == f"sqlite:///{tmp_path.resolve()}/db/state.db"
    pg = "postgresql://factory@db.internal/nanodistro"
    (tmp_path / "nanodistro.toml").write_text(f'[state]\nurl = "{pg}"\n')
    assert workspace_state_url(load_workspace(tmp_path)) == pg
    (tmp_path / "nanodistro.toml").write_text('[state]\nurl = "state.db"\n')
    with pytest.raises(ConfigError, match=r"state\.url: expected a database URL"):
        load_workspace(tmp_path)
    (tmp_path / "nanodistro.toml").write_text('[state]\nuri = "sqlite://"\n')
    with pytest.raises(ConfigError, match=r"unknown key 'uri' \(did you mean 'url'\?\)"):
        load_workspace(tmp_path)


def test_unusable_urls_are_one_line_errors_without_the_password() -> None:
    with pytest.raises(ConfigError, match=r"^state\.url: not a database URL"):
        open_state("not a url")
    with pytest.raises(ConfigError, match=r"^state\.url: unusable database URL: .*nosuchdb"):
        open_state("nosuchdb://host/db")
    with pytest.raises(StateError, match="cannot open the state database") as caught:
        open_state("postgresql://factory:hunter2@127.0.0.1:1/nanodistro")
    assert "hunter2" not in str(caught.value)
    assert "127.0.0.1:1/nanodistro" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_migrations_ship_inside_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # script_location is the installed package's own folder, not a path relative to a checkout
    package = Path(nanodistro.__file__).parent
    assert package / "factory" / "state" / "migrations" == MIGRATIONS
    assert (MIGRATIONS / "env.py").is_file()
    assert (MIGRATIONS / "versions" / "0001_initial.py").is_file()
    # setuptools packs every .py of every package it finds: the migration folders must be found
    src = package.parent
    found = setuptools.find_packages(str(src))
    assert "nanodistro.factory.state.migrations" in found
    assert "nanodistro.factory.state.migrations.versions" in found
    # no alembic.ini and another working directory: opening still migrates
    monkeypatch.chdir(tmp_path)
    with open_state("sqlite:///relative.db") as state:
        assert set(inspect(state.engine).get_table_names()) >= TABLES
    assert (tmp_path / "relative.db").is_file()


def test_a_missing_postgresql_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    import postgres_server

    monkeypatch.setattr(postgres_server, "postgres_bin", lambda: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must have every tool"):
        postgres_server.require_postgres()
