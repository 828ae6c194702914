"""What a CLI command needs to push or pull: credentials from the environment, one call.

``nanodistro image push LAYOUT REF`` (cli/image.py) calls :func:`push_command`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from nanodistro.registry.transfer import pull, push_layout

PASSWORD_ENV = "NANODISTRO_REGISTRY_PASSWORD"


def push_command(
    layout: Path,
    ref: str,
    insecure: bool = False,
    username: str | None = None,
    password: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> str:
    """Push ``layout`` to ``ref`` and return the pushed digest. With a username and no password
    the password is read from ``$NANODISTRO_REGISTRY_PASSWORD`` (keeps it out of argv); with
    neither, ``~/.docker/config.json`` ``auths`` is used."""
    return push_layout(
        layout,
        ref,
        insecure=insecure,
        username=username,
        password=_password(username, password),
        progress=progress,
    )


def pull_command(
    ref: str,
    layout: Path,
    insecure: bool = False,
    username: str | None = None,
    password: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> str:
    """Pull ``ref`` into the OCI layout ``layout``; credentials as for :func:`push_command`."""
    return pull(
        ref,
        layout,
        insecure=insecure,
        username=username,
        password=_password(username, password),
        progress=progress,
    )


def _password(username: str | None, password: str | None) -> str | None:
    # A username without a password takes it from the environment, keeping it out of argv.
    if username is not None and password is None:
        return os.environ.get(PASSWORD_ENV, "")
    return password
