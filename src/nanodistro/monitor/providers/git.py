"""Plain git: the tags of the recipe's first ``git-checkout`` repository (melange docs/UPDATE.md).

Runs ``git ls-remote --tags <repo>``; an annotated tag's ``^{}`` line gives the commit it
points at, which is what ``expected-commit`` pins.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import Any

from nanodistro.errors import MonitorError
from nanodistro.monitor.http import HttpClient, note_request
from nanodistro.monitor.models import UpstreamRelease
from nanodistro.monitor.providers.base import ProviderConfig
from nanodistro.recipe.update import UpdateConfig

KIND = "git"
TIMEOUT = 120.0


def block(update: UpdateConfig) -> Any:
    return update.git


def parse_ls_remote(output: str) -> dict[str, str]:
    """``{tag: commit}`` from ``git ls-remote --tags`` output, peeled tags preferred."""
    tags: dict[str, str] = {}
    peeled: dict[str, str] = {}
    for line in output.splitlines():
        sha, _, ref = line.partition("\t")
        if not ref.startswith("refs/tags/"):
            continue
        name = ref.removeprefix("refs/tags/")
        if name.endswith("^{}"):
            peeled[name[:-3]] = sha
        else:
            tags[name] = sha
    return {name: peeled.get(name, sha) for name, sha in tags.items()}


async def _stop(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    await asyncio.shield(process.wait())


async def ls_remote(repository: str, *patterns: str) -> dict[str, str]:
    """Tags of ``repository`` (URL or path) as ``{tag: commit}``."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true"}
    note_request(repository)
    try:
        process = await asyncio.create_subprocess_exec(
            "git",
            "ls-remote",
            "--tags",
            repository,
            *patterns,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            # Its own process group: git runs helpers (git-remote-http) that hold the pipes
            # open, so stopping git means stopping the group.
            start_new_session=True,
        )
    except OSError as error:
        raise MonitorError(f"cannot run git: {error}", where=repository) from None
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), TIMEOUT)
    except TimeoutError:
        await _stop(process)
        raise MonitorError(
            f"git ls-remote timed out after {TIMEOUT:.0f} s", where=repository
        ) from None
    except asyncio.CancelledError:
        # The recipe's deadline passed: do not leave git running behind the monitor.
        await _stop(process)
        raise
    if process.returncode != 0:
        message = stderr.decode(errors="replace").strip().splitlines()
        raise MonitorError(
            f"git ls-remote failed: {message[-1] if message else process.returncode}",
            where=repository,
        )
    return parse_ls_remote(stdout.decode(errors="replace"))


async def versions(config: ProviderConfig, client: HttpClient) -> list[UpstreamRelease]:
    checkouts = config.target.git_checkouts
    if not checkouts:
        raise MonitorError(
            "update.git needs a git-checkout step in the pipeline (its repository is monitored)",
            field="update.git",
        )
    tags = await ls_remote(checkouts[0].repository)
    return [UpstreamRelease(version=name, commit=sha) for name, sha in tags.items()]
