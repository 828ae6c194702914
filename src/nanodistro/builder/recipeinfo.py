"""Facts about a recipe file and its build logs: content hash, git commit, published builds."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path

from nanodistro.builder.package import NANODISTRO_CONTROL
from nanodistro.errors import NanodistroError
from nanodistro.formats.apk import read_apk
from nanodistro.recipe.model import Recipe

LOG_TAIL_LINES = 25


def recipe_hash(path: Path, recipe: Recipe) -> str:
    """SHA-256 over the recipe file and the files of its source directory ``<dir>/<name>/``."""
    digest = hashlib.sha256(path.read_bytes())
    source_dir = path.parent / recipe.package.name
    if source_dir.is_dir():
        for file in sorted(p for p in source_dir.rglob("*") if p.is_file()):
            digest.update(b"\0" + file.relative_to(source_dir).as_posix().encode() + b"\0")
            digest.update(file.read_bytes())
    return digest.hexdigest()


def git_commit_time(path: Path) -> int | None:
    """Unix time of the last commit touching ``path``, if it is in a git work tree."""
    text = _git_log(path, "%ct")
    return int(text) if text.isdigit() else None


def git_commit_id(path: Path) -> str:
    """The last commit touching ``path`` ("" outside git): the default ``package.commit``, as
    melange fills it from the configuration's repository."""
    text = _git_log(path, "%H")
    return text if re.fullmatch(r"[0-9a-f]{40}", text) else ""


def _git_log(path: Path, fmt: str) -> str:
    try:
        result = subprocess.run(
            ["git", "log", "-1", f"--format={fmt}", "--", path.name],
            cwd=path.parent,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def log_slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:60] or "step"


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        content = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(content[-lines:])


def recorded_recipe_hash(extra_control: Mapping[str, bytes]) -> str:
    """The recipe hash a package records in its ``.nanodistro.json`` control file ("" if none)."""
    raw = extra_control.get(NANODISTRO_CONTROL)
    try:
        return str(json.loads(raw)["recipe_sha256"]) if raw else ""
    except (ValueError, KeyError, TypeError):
        return ""


def existing_build(repo: Path, arch: str, filename: str) -> str | None:
    """The recipe hash recorded in an already published package, if any."""
    path = repo / arch / filename
    if not path.is_file():
        return None
    try:
        return recorded_recipe_hash(read_apk(path.read_bytes(), where=str(path)).extra_control)
    except NanodistroError:
        return ""
