"""Helpers shared by CLI modules: console output and JSON printing."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from rich.console import Console

# Rich falls back to 80 columns when output is not a terminal (make run | tee, CI logs), which
# wraps every table; logs have no width limit, so give them room unless COLUMNS says otherwise.
_LOG_WIDTH = 160


def _width(stream: Any) -> int | None:
    if os.environ.get("COLUMNS") or stream.isatty():
        return None
    return _LOG_WIDTH


console = Console(width=_width(sys.stdout))
err_console = Console(stderr=True, width=_width(sys.stderr))


def print_json(data: Any) -> None:
    """Print machine-readable output: stable key order, one document on stdout."""
    json.dump(data, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")
