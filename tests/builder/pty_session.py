"""Running `nanodistro` on a pseudo-terminal, as a user at a terminal would (stdin, stdout and
stderr are the pty), optionally answering prompts."""

from __future__ import annotations

import os
import pty
import re
import select
import sys
import time
from dataclasses import dataclass
from pathlib import Path

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass
class PtySession:
    text: str  # everything the terminal received, escape sequences included
    status: int  # exit status

    @property
    def plain(self) -> str:
        """The text without escape sequences and carriage returns."""
        return _ANSI.sub("", self.text).replace("\r", "")


def run_in_pty(
    cwd: Path,
    *args: str,
    answers: dict[str, str] | None = None,
    timeout: float = 300,
) -> PtySession:
    """``python -m nanodistro ARGS`` on a new pty in ``cwd``; whenever the output shows a key of
    ``answers`` (once each), its value is typed."""
    pending = dict(answers or {})
    env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    env.update(COLUMNS="200", LINES="50", TERM="xterm")
    pid, fd = pty.fork()
    if pid == 0:  # the child: exec right away
        os.chdir(cwd)
        os.execve(sys.executable, [sys.executable, "-m", "nanodistro", *args], env)
    received = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                received += chunk
            text = received.decode(errors="replace")
            for prompt in [p for p in pending if p in text]:
                os.write(fd, pending.pop(prompt).encode())
        else:
            os.kill(pid, 9)
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return PtySession(received.decode(errors="replace"), os.waitstatus_to_exitcode(status))
