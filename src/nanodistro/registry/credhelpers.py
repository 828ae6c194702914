"""Docker credential helpers: ``docker-credential-<name> get``, as docker, crane and skopeo run them.

A docker ``config.json`` names helpers in ``credHelpers`` (registry host -> helper name) and
``credsStore`` (the helper for every other registry). The protocol (docker/docker-credential-helpers)
is: run ``docker-credential-<name> get``, write the server (``host[:port]``; Docker Hub as
``https://index.docker.io/v1/``) on stdin, read ``{"ServerURL", "Username", "Secret"}`` from
stdout. A helper that has nothing for the server exits non-zero saying "credentials not found".

The helper name comes from a file, so it is held to a plain name (no ``/``, no ``..``): the
program run is always ``docker-credential-<name>`` found on ``PATH``, never a path the config
chose.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from nanodistro.errors import RegistryError

HELPER_PREFIX = "docker-credential-"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# What the helpers print when they hold nothing for the server (docker-credential-helpers'
# credentials.errCredentialsNotFoundMessage), on stdout with a non-zero exit.
_NOT_FOUND = "credentials not found"
_MAX_OUTPUT = 1 << 20
_TIMEOUT = 60.0


@dataclass(frozen=True)
class HelperCredentials:
    username: str
    secret: str


def helper_program(name: str, *, where: str, field: str) -> str:
    """The path of ``docker-credential-<name>`` on PATH; RegistryError for a name that is not a
    plain name or a helper that is not installed."""
    if not _NAME_RE.fullmatch(name) or ".." in name:
        raise RegistryError(
            f"credential helper name {name!r} is not a plain name (letters, digits, . _ -)",
            where=where,
            field=field,
        )
    found = shutil.which(HELPER_PREFIX + name)
    if found is None:
        raise RegistryError(
            f"credential helper {HELPER_PREFIX}{name} is not on PATH (install it, or remove "
            f"{field} from the docker config)",
            where=where,
            field=field,
        )
    return found


def run_helper(
    name: str, server: str, *, config: Path, field: str, timeout: float = _TIMEOUT
) -> HelperCredentials | None:
    """Ask helper ``name`` for ``server``'s credentials; None when it has none."""
    where = str(config)
    program = helper_program(name, where=where, field=field)
    try:
        done = subprocess.run(
            [program, "get"],
            input=server.encode(),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RegistryError(
            f"credential helper {HELPER_PREFIX}{name} did not answer in {timeout:.0f} s",
            where=where,
            field=field,
        ) from None
    except OSError as exc:
        raise RegistryError(
            f"cannot run credential helper {program}: {exc.strerror or exc}",
            where=where,
            field=field,
        ) from None
    stdout = done.stdout[:_MAX_OUTPUT].decode("utf-8", "replace")
    if done.returncode != 0:
        message = (stdout.strip() or done.stderr.decode("utf-8", "replace").strip())[:300]
        if _NOT_FOUND in message.lower():
            return None
        raise RegistryError(
            f"credential helper {HELPER_PREFIX}{name} failed for {server} "
            f"(exit {done.returncode}): {message or 'no message'}",
            where=where,
            field=field,
        )
    try:
        answer = json.loads(stdout)
    except json.JSONDecodeError:
        answer = None
    username = answer.get("Username") if isinstance(answer, dict) else None
    secret = answer.get("Secret") if isinstance(answer, dict) else None
    if not isinstance(username, str) or not isinstance(secret, str):
        # Never echo the output: it may hold the secret.
        raise RegistryError(
            f"credential helper {HELPER_PREFIX}{name} answered for {server} without the JSON "
            'object {"Username": ..., "Secret": ...} expected',
            where=where,
            field=field,
        )
    if username == "<token>":
        raise RegistryError(
            f"credential helper {HELPER_PREFIX}{name} gave an identity token for {server}; "
            "nanodistro supports username/password credentials only",
            where=where,
            field=field,
        )
    return HelperCredentials(username, secret)
