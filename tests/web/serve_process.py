"""``nanodistro serve`` as a user starts it: a subprocess on 127.0.0.1, waited for until it
answers, stopped with SIGTERM (then killed), its stderr shown when it fails.

    with serve(workspace, "--no-loop") as base_url:
        httpx.get(base_url + "/api/runs")
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

__all__ = ["ServeFailed", "empty_workspace", "free_port", "serve", "wait_until"]

START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


class ServeFailed(AssertionError):
    """The serving process died or never answered; the message carries its stderr."""


def free_port() -> int:
    """A port free on 127.0.0.1 right now (the kernel picks; closed again before use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.1) -> bool:
    """Poll ``predicate()`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def _tail(path: Path, limit: int = 6000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no stderr)"
    return text[-limit:] or "(empty stderr)"


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(STOP_TIMEOUT)


@contextlib.contextmanager
def serve(
    workspace: Path,
    *extra: str,
    port: int | None = None,
    env: dict[str, str] | None = None,
    timeout: float = START_TIMEOUT,
) -> Iterator[str]:
    """Run ``nanodistro serve WORKSPACE --host 127.0.0.1 --port PORT EXTRA...`` and yield its
    base URL (``http://127.0.0.1:PORT``) once ``GET /openapi.json`` answers 200.

    A process that exits early or never answers raises ServeFailed with its stderr; an
    exception inside the block gets the stderr added as a note, so a failing test shows
    what the server said."""
    chosen = port or free_port()
    base_url = f"http://127.0.0.1:{chosen}"
    environment = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    environment.update(env or {})
    command = [
        sys.executable,
        "-m",
        "nanodistro",
        "serve",
        str(workspace),
        "--host",
        "127.0.0.1",
        "--port",
        str(chosen),
        *extra,
    ]
    with tempfile.NamedTemporaryFile(prefix="nanodistro-serve-", suffix=".err") as err:
        err_path = Path(err.name)
        process = subprocess.Popen(
            command,
            cwd=workspace,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=environment,
        )
        try:
            _wait_ready(process, base_url, timeout, err_path)
            try:
                yield base_url
            except BaseException as failure:
                failure.add_note(f"nanodistro serve stderr:\n{_tail(err_path)}")
                raise
        finally:
            _stop(process)


def _wait_ready(
    process: subprocess.Popen[bytes], base_url: str, timeout: float, err_path: Path
) -> None:
    deadline = time.monotonic() + timeout
    last_error = "no answer yet"
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            code = process.poll()
            if code is not None:
                raise ServeFailed(
                    f"nanodistro serve exited with {code} before answering:\n{_tail(err_path)}"
                )
            try:
                answer = client.get(base_url + "/openapi.json")
                if answer.status_code == 200:
                    return
                last_error = f"GET /openapi.json -> {answer.status_code}"
            except httpx.HTTPError as error:
                last_error = repr(error)
            time.sleep(0.1)
    raise ServeFailed(
        f"nanodistro serve did not answer on {base_url} within {timeout:.0f} s "
        f"({last_error}):\n{_tail(err_path)}"
    )


def empty_workspace(root: Path, name: str = "empty") -> Path:
    """A workspace with no recipes and no images (a cycle over it publishes nothing)."""
    (root / "recipes").mkdir(parents=True)
    (root / "images").mkdir()
    (root / "nanodistro.toml").write_text(
        f'[workspace]\nname = "{name}"\narchs = ["x86_64"]\n\n[keys]\nname = "{name}"\n'
    )
    return root
