"""``nanodistro events``: the log in order, filtered by subject, --since (relative or ISO) and type,
as a table or JSON; bad options are one-line errors; an untouched workspace gets no database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cli_runner import run_cli
from nanodistro.factory import events
from nanodistro.factory.state import open_state

NOW = datetime.now(UTC)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    # "now" of each test, not of the collection: in a long run the module is imported many
    # minutes before its tests, and "--since 10m" must still see the event made 5 minutes "ago"
    global NOW
    NOW = datetime.now(UTC)
    (tmp_path / "nanodistro.toml").write_text("")
    with open_state(f"sqlite:///{tmp_path / '.nanodistro' / 'state.db'}") as state:
        events.record(state, events.RELEASE_DETECTED, "recipe:zlib", {"version": "1.3.1"},
                      time=NOW - timedelta(days=2))  # fmt: skip
        events.record(state, events.BUILD_FAILED, "recipe:zlib", {"log": "out/logs/zlib.log"},
                      time=NOW - timedelta(hours=3))  # fmt: skip
        events.record(state, events.IMAGE_BUILT, "image:python", time=NOW - timedelta(minutes=5))
        events.record(state, events.PROMOTED, "channel:stable", {"version": 4},
                      time=NOW - timedelta(minutes=1))  # fmt: skip
    return tmp_path


def _json(workspace: Path, *args: str) -> list[dict[str, object]]:
    result = run_cli(workspace, "events", "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_json_lists_every_event_oldest_first(workspace: Path) -> None:
    listed = _json(workspace)  # the workspace is found from the working directory
    assert [(e["id"], e["type"], e["subject"]) for e in listed] == [
        (1, "release-detected", "recipe:zlib"),
        (2, "build-failed", "recipe:zlib"),
        (3, "image-built", "image:python"),
        (4, "promoted", "channel:stable"),
    ]
    assert listed[0]["payload"] == {"version": "1.3.1"}
    assert listed[0]["time"] == (NOW - timedelta(days=2)).isoformat().replace("+00:00", "Z")


def test_filters(
    workspace: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from nanodistro.cli import main

    monkeypatch.chdir(workspace)

    def types(*args: str) -> list[object]:
        # in this process: the same command line, without a Python start per filter
        with pytest.raises(SystemExit) as exited:
            main(["events", "--json", *args])
        assert exited.value.code == 0
        return [e["type"] for e in json.loads(capsys.readouterr().out)]

    assert types("--since", "10m") == ["image-built", "promoted"]
    assert types("--since", "1d") == ["build-failed", "image-built", "promoted"]
    assert types("--since", "1h30m") == ["image-built", "promoted"]
    iso = (NOW - timedelta(hours=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert types("--since", iso) == ["build-failed", "image-built", "promoted"]
    naive_utc = (NOW - timedelta(hours=4)).strftime("%Y-%m-%dT%H:%M:%S")
    assert types("--since", naive_utc) == ["build-failed", "image-built", "promoted"]
    assert types("--since", (NOW + timedelta(days=1)).date().isoformat()) == []
    assert types("--subject", "recipe:zlib") == ["release-detected", "build-failed"]
    assert types("--subject", "channel:") == ["promoted"]
    assert types("--type", "promoted", "--type", "build-failed") == ["build-failed", "promoted"]
    assert types("--subject", "recipe:zlib", "--since", "1d", "--type", "build-failed") == [
        "build-failed"
    ]


def test_table(workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    elsewhere = tmp_path_factory.mktemp("cwd")
    result = run_cli(elsewhere, "events", workspace, "--subject", "recipe:zlib")
    assert result.returncode == 0, result.stderr
    assert "Events (2)" in result.stdout
    lines = [line for line in result.stdout.splitlines() if "recipe:zlib" in line]
    assert len(lines) == 2
    assert "release-detected" in lines[0] and '{"version": "1.3.1"}' in lines[0]
    assert "build-failed" in lines[1] and "out/logs/zlib.log" in lines[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "error: --since: expected an ISO-8601 time"),
        (["--since", "10"], "error: --since: expected an ISO-8601 time"),
        (["--since", "10mins"], "error: --since: expected a duration like 90s, 10m"),
        (["--since", "5x"], "got '5x'"),
        (["--type", "build-fail"], "error: --type: unknown event type 'build-fail' (did you mean"),
    ],
)
def test_bad_options_are_one_line_errors(workspace: Path, args: list[str], message: str) -> None:
    result = run_cli(workspace, "events", *args)
    assert result.returncode == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stdout == ""


def test_a_workspace_without_state_lists_nothing_and_creates_nothing(tmp_path: Path) -> None:
    (tmp_path / "nanodistro.toml").write_text("")
    assert _json(tmp_path) == []
    assert not (tmp_path / ".nanodistro").exists()


def test_the_configured_state_url_is_used(tmp_path: Path) -> None:
    (tmp_path / "nanodistro.toml").write_text('[state]\nurl = "sqlite:///var/factory.db"\n')
    with open_state(f"sqlite:///{tmp_path / 'var' / 'factory.db'}") as state:
        events.record(state, events.ROLLED_BACK, "channel:stable", {"to": 2})
    assert [e["type"] for e in _json(tmp_path)] == ["rolled-back"]
