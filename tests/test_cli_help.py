"""Every command a user can find answers ``--help``, and every command README.md promises exists.

The command tree is walked from the Click object Typer builds, so a command added later is
checked without editing this file. README's "Command line" table is parsed, and each row's
command path and ``--options`` are looked up in that tree.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import typer

from fixture_paths import REPO_ROOT
from nanodistro.cli import app

README = REPO_ROOT / "README.md"


# Typer vendors Click (typer._click), so commands are handled by duck typing: a group has a
# ``commands`` dict, every command has ``params`` with ``opts``.
Command = Any


def _is_group(command: Command) -> bool:
    return isinstance(getattr(command, "commands", None), dict)


def _root() -> Command:
    command = typer.main.get_command(app)
    assert _is_group(command)
    return command


def _walk(group: Command, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []
    for name, command in sorted(group.commands.items()):
        if getattr(command, "hidden", False):
            continue
        paths.append((*prefix, name))
        if _is_group(command):
            paths.extend(_walk(command, (*prefix, name)))
    return paths


COMMAND_PATHS = _walk(_root())


def _lookup(path: tuple[str, ...]) -> Command:
    command = _root()
    for name in path:
        assert _is_group(command), f"{name!r}: parent is not a group"
        assert name in command.commands, f"no command {' '.join(path)!r}"
        command = command.commands[name]
    return command


def test_tree_has_the_documented_groups() -> None:
    # guards the walk itself: if it found nothing, every parametrized test would vanish
    top = {path[0] for path in COMMAND_PATHS}
    assert {"keygen", "apk", "publish", "index", "lint", "build", "resolve", "image"} <= top
    assert ("apk", "pack") in COMMAND_PATHS and ("image", "build") in COMMAND_PATHS


def test_root_help_lists_every_top_level_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "nanodistro", "--help"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    listed = set(re.findall(r"^[│|] (\S+)\s{2,}", result.stdout, re.MULTILINE))
    top = {path[0] for path in COMMAND_PATHS}
    assert top <= listed | {"--version", "--help"}, f"not in --help: {top - listed}"


def _help(path: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    """``nanodistro PATH --help`` through the real entry point (it loads only the owning module
    and is not standalone)."""
    return subprocess.run(
        [sys.executable, "-m", "nanodistro", *path, "--help"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.fixture(scope="module")
def help_runs() -> dict[tuple[str, ...], subprocess.CompletedProcess[str]]:
    """Every command's ``--help`` process, started once for the module and two at a time (the
    machine's 2 cores; ~60 process starts one after another were ~40 s)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(COMMAND_PATHS, pool.map(_help, COMMAND_PATHS), strict=True))


@pytest.mark.parametrize("path", COMMAND_PATHS, ids=[" ".join(p) for p in COMMAND_PATHS])
def test_every_command_answers_help(
    path: tuple[str, ...], help_runs: dict[tuple[str, ...], subprocess.CompletedProcess[str]]
) -> None:
    command = _lookup(path)
    description = (command.help or command.short_help or "").strip()
    assert description, f"{' '.join(path)} has no description (docstring)"
    result = help_runs[path]
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    assert "Usage: nanodistro " + " ".join(path) in result.stdout
    # the first line of the docstring is shown (Rich may re-wrap, so compare its first words)
    first_words = " ".join(description.split()[:4])
    assert first_words in " ".join(result.stdout.replace("│", " ").replace("|", " ").split())


def _readme_rows() -> list[str]:
    text = README.read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(nanodistro [^`]+)` \|", text, re.MULTILINE)
    assert len(rows) >= 15, f"README command table not found or shrank: {rows}"
    return rows


README_ROWS = _readme_rows()


def _split_row(row: str) -> tuple[tuple[str, ...], list[str]]:
    """``nanodistro apk pack DIR --name N`` -> (("apk", "pack"), ["--name"])."""
    words = row.split()[1:]
    path: list[str] = []
    command = _root()
    for word in words:
        if not _is_group(command) or not re.fullmatch(r"[a-z][a-z-]*", word):
            break
        assert word in command.commands, (
            f"README row {row!r}: no command {' '.join([*path, word])!r}"
        )
        path.append(word)
        command = command.commands[word]
    options = re.findall(r"(--[a-z][a-z-]*)", row)
    return tuple(path), options


@pytest.mark.parametrize("row", README_ROWS)
def test_readme_command_exists_with_its_options(row: str) -> None:
    path, options = _split_row(row)
    assert path, f"README row {row!r} names no command"
    command = _lookup(path)
    assert not _is_group(command), f"README row {row!r} stops at a group"
    known = {name for param in command.params for name in (*param.opts, *param.secondary_opts)}
    missing = [option for option in options if option not in known]
    assert not missing, f"README row {row!r}: {' '.join(path)} has no {missing}"
