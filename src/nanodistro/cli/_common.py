"""Helpers shared by CLI modules: console output and JSON printing."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from nanodistro.errors import ConfigError

if TYPE_CHECKING:
    from rich.console import Console

# Rich falls back to 80 columns when output is not a terminal (make run | tee, CI logs), which
# wraps every table; logs have no width limit, so give them room unless COLUMNS says otherwise.
_LOG_WIDTH = 160


def _width(stream: Any) -> int | None:
    if os.environ.get("COLUMNS") or stream.isatty():
        return None
    return _LOG_WIDTH


class _LazyConsole:
    """A Rich console made on first use: importing Rich costs ~40 ms, and most command lines
    (``--version``, ``--json`` output, plain ``typer.echo`` lines) never print through one."""

    def __init__(self, *, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def _real(self) -> Console:
        if self._console is None:
            from rich.console import Console

            stream = sys.stderr if self._stderr else sys.stdout
            self._console = Console(stderr=self._stderr, width=_width(stream))
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real(), name)


console = cast("Console", _LazyConsole(stderr=False))
err_console = cast("Console", _LazyConsole(stderr=True))


def escape(text: str) -> str:
    """``rich.markup.escape``, with Rich imported on first use rather than by every command
    module (a ``--json`` run prints no markup)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def print_json(data: Any) -> None:
    """Print machine-readable output: stable key order, one document on stdout."""
    json.dump(data, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


def source_date_epoch(value: int | None) -> int | None:
    """An explicit ``--source-date-epoch``, else ``$SOURCE_DATE_EPOCH``, else None.

    A set but non-integer variable is an error rather than silently ignored: a build that quietly
    falls back to another timestamp is not the reproducible build the user asked for.
    """
    if value is not None:
        return value
    text = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise ConfigError(
            f"expected an integer (Unix seconds), got {text!r}", field="SOURCE_DATE_EPOCH"
        )
    return int(text)


def workspace_file(workspace: Path | None) -> Path:
    """The ``nanodistro.toml`` a workspace command works on: the argument, else the nearest one at
    or above the current directory, else ``./examples``."""
    from nanodistro.factory.workspace import WORKSPACE_FILE, find_workspace

    if workspace is not None:
        return workspace
    found = find_workspace(Path.cwd())
    if found is not None:
        return found
    if (Path("examples") / WORKSPACE_FILE).is_file():
        return Path("examples") / WORKSPACE_FILE
    raise ConfigError(f"no {WORKSPACE_FILE} here or above; pass the workspace directory")
