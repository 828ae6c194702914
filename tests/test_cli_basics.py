"""The CLI contract: help everywhere, one-line errors, non-zero exit, no tracebacks."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nanodistro", *args], capture_output=True, text=True, check=False
    )


def test_help_lists_commands() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    assert "Usage" in result.stdout
    for command in ("keygen", "publish", "lint", "build", "resolve", "monitor", "apk", "image"):
        assert f" {command} " in result.stdout, command


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout == f"nanodistro {importlib.metadata.version('nanodistro')}\n"


def test_unknown_command_fails_without_traceback() -> None:
    result = run_cli("no-such-command")
    assert result.returncode == 2
    assert result.stderr == "error: No such command 'no-such-command'. (see 'nanodistro --help')\n"


def test_usage_errors_are_one_line() -> None:
    for args in (["apk", "pack"], ["keygen", "--bits", "many"], ["image", "diff", "only-one"]):
        result = run_cli(*args)
        assert result.returncode == 2, args
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert "--help" in lines[0]


def test_command_table_matches_what_modules_register() -> None:
    import typer

    from nanodistro.cli import COMMAND_MODULES, build_app

    for module, names in COMMAND_MODULES.items():
        app = build_app([module])
        command = typer.main.get_command(app)
        assert sorted(command.commands) == sorted(names), module  # type: ignore[attr-defined]


def test_one_command_loads_only_its_module() -> None:
    code = (
        "import sys\n"
        "from nanodistro.cli import main\n"
        "try:\n"
        "    main(['resolve', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('nanodistro.builder.orchestrate' in sys.modules, 'nanodistro.image.build' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "False False"


def test_bad_source_date_epoch_is_an_error_not_ignored(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "SOURCE_DATE_EPOCH": "yesterday"}
    (tmp_path / "img.yaml").write_text("contents:\n  packages: [x]\n")
    (tmp_path / "r.yaml").write_text("package: {name: r, version: '1', epoch: 0}\n")
    for args in (
        ["image", "build", str(tmp_path / "img.yaml"), "--out", str(tmp_path / "out")],
        ["build", str(tmp_path / "r.yaml"), "--no-workspace"],
    ):
        result = subprocess.run(
            [sys.executable, "-m", "nanodistro", *args],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert result.returncode == 1, (args, result.stderr)
        assert result.stderr.strip() == (
            "error: SOURCE_DATE_EPOCH: expected an integer (Unix seconds), got 'yesterday'"
        )
        assert not (tmp_path / "out").exists()
