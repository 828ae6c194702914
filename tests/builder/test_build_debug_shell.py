"""`nanodistro build --debug`: a failing step opens a shell inside its sandbox (same root,
environment and working directory) on the user's terminal; when it exits, the build fails as
usual. Without a terminal, --debug says so and the failure is an ordinary one."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from pty_session import run_in_pty
from tiny_recipes import FAILING_STEP, tiny_recipe, write


def test_failing_step_opens_a_shell_in_its_sandbox(tmp_path: Path) -> None:
    recipe = write(tmp_path, tiny_recipe(FAILING_STEP))
    ws = tmp_path / "ws"
    session = run_in_pty(
        tmp_path,
        "build",
        str(recipe),
        "--debug",
        "--no-test",
        "--workspace-dir",
        str(ws),
        answers={"(nanodistro debug) $ ": "echo INSIDE-$PWD-$DEBUGVAR-$(id -u); exit\n"},
    )
    screen = session.plain
    assert session.status == 1, screen
    assert "debug: [tiny] explode failed" in screen
    assert "a shell in its sandbox at /home/build/sub" in screen
    # the shell ran where the step ran, with the step's environment, as the build user
    inside = re.search(r"^INSIDE-(\S+)$", screen, re.M)
    assert inside, screen
    assert inside.group(1) == "/home/build/sub-from-the-step-1000"
    # then the build failed as usual, after the shell
    error = screen.index("error: ")
    assert inside.start() < screen.index("debug shell exited (0); the build fails") < error
    assert "build step 'explode' (pipeline[0]) of tiny exited with status 3" in screen[error:]
    assert "Traceback" not in screen
    assert list(ws.iterdir()) == []  # and its workspace is gone


def test_debug_without_a_terminal_is_an_ordinary_failure(tmp_path: Path) -> None:
    recipe = write(tmp_path, tiny_recipe(FAILING_STEP))
    done = subprocess.run(
        [sys.executable, "-m", "nanodistro", "build", str(recipe), "--debug", "--no-test"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 1
    assert "--debug needs a terminal (stdin is not a TTY)" in done.stderr
    assert "exited with status 3" in done.stderr
    assert "debug shell" not in done.stderr
