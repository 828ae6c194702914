"""Every command's ``--help`` reads as help, not as Python: no ``<bool>`` after a flag, no
``<list[Path]>`` / ``<str>`` type names, no ``{name}`` placeholders in the usage line."""

from __future__ import annotations

import re
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from nanodistro.cli import build_app

# Python's spelling of a parameter type, as Typer 0.2x prints it when left alone
ARTIFACT = re.compile(
    r"<(?:bool|str|int|float|Path|PurePath|datetime|list\[[^\]]*\]|tuple\[[^\]]*\])>"
)
BRACES = re.compile(r"\{[a-z_]+\}")  # Typer's required-argument braces in the usage line


def _paths(command: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        if not getattr(sub, "hidden", False):
            found.extend(_paths(sub, (*prefix, name)))
    return found


APP = build_app()
PATHS = _paths(typer.main.get_command(APP))


def test_every_command_is_walked() -> None:
    assert len(PATHS) > 40 and ("image", "diff") in PATHS and ("lint",) in PATHS


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "nanodistro")
def test_help_has_no_python_artifacts(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(APP, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    usage = next(line for line in result.output.splitlines() if "Usage:" in line)
    found = ARTIFACT.findall(result.output) + BRACES.findall(usage)
    assert not found, f"{' '.join(path)} --help shows {found}:\n{result.output}"


def test_flags_show_no_type_and_values_show_clicks_words() -> None:
    output = CliRunner().invoke(APP, ["lint", "--help"], env={"COLUMNS": "200"}).output
    json_row = next(line for line in output.splitlines() if "--json" in line)
    assert re.search(r"--json\s+Print findings", json_row), json_row
    assert re.search(r"--pipeline-dir\s+PATH\s+Directory", output)
    assert re.search(r"--disable\s+TEXT\s+Skip", output)
    usage = CliRunner().invoke(APP, ["image", "diff", "--help"], env={"COLUMNS": "200"}).output
    assert "Usage: nanodistro image diff [OPTIONS] A B" in usage
