"""Checks ``nanodistro build`` makes before building, so a missing key or repository is named as
such instead of surfacing later as a failed publish or "no such package"."""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Iterable
from pathlib import Path

from nanodistro.errors import ConfigError, KeyLoadError


def signing_key_hint(repo: Path, recipe: Path | None, use_workspace: bool) -> KeyLoadError:
    """The error for a build that would publish to ``repo`` without a signing key: where the key
    is looked for and the ``keygen`` command that creates it there."""
    from nanodistro.factory.workspace import find_workspace, load_workspace

    found = find_workspace(recipe) if use_workspace and recipe is not None else None
    if found is None:
        return KeyLoadError(
            f"publishing to {repo} needs a signing key: pass --key FILE.rsa (create one with "
            "'nanodistro keygen --out keys')",
            field="--key",
        )
    workspace = load_workspace(found)
    keys = _shown(workspace.keys_dir)
    return KeyLoadError(
        f"publishing to {_shown(repo)} needs a signing key and the workspace has none "
        f"({keys}/{workspace.key_name}-*.rsa): create it with 'nanodistro keygen --name "
        f"{workspace.key_name} --out {keys}', or pass --key",
        where=str(found),
    )


def check_repositories(specs: Iterable[str], option: str = "--repository") -> None:
    """Each local repository given on the command line exists: a typo must not quietly leave
    its packages out (the build would then report their names as missing packages)."""
    from nanodistro.resolve import parse_repository
    from nanodistro.resolve.repositories import is_remote

    for spec in specs:
        ref = parse_repository(spec, where=option)
        if is_remote(ref.url):
            continue
        local = urllib.parse.urlparse(ref.url).path if ref.url.startswith("file:") else ref.url
        if not Path(local).is_dir():
            what = "is not a directory" if Path(local).exists() else "does not exist"
            raise ConfigError(f"repository {what}", where=local, field=option)


def _shown(path: Path) -> str:
    """``path`` relative to the current directory when it is below it (what a user types)."""
    try:
        relative = Path(os.path.relpath(path))
    except ValueError:
        return str(path)
    return str(relative) if not str(relative).startswith("..") else str(path)
