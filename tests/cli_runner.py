"""Running the real ``nanodistro`` command in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def run_cli(cwd: Path, *args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m nanodistro ARGS`` in ``cwd``: no inherited SOURCE_DATE_EPOCH, 200 columns
    (tables do not wrap), output captured as text, never raising on a non-zero exit."""
    env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "nanodistro", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=timeout,
    )


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``nanodistro.cli.main(argv)`` in this process: exit status, stdout, stderr."""
    from nanodistro.cli import main

    try:
        main(argv)
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err
